"""Coverage-guided fuzzing with atheris: ``python -m fuzzing.run TARGET [libFuzzer args]``.

atheris is not a test dependency (it builds against clang's libFuzzer); install it by
hand to fuzz. The test suite runs the same targets through Hypothesis.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Fuzz the target named by the first argument until libFuzzer stops."""
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

    with atheris.instrument_imports():
        from fuzzing.targets import TARGETS

    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        raise SystemExit(f"usage: python -m fuzzing.run {{{','.join(TARGETS)}}} [libFuzzer args]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
