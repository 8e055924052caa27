"""``python -m bench [NAME ...] [suite options]``: run benchmark suites.

With no NAME, every suite runs; ``--list`` lists them. Options after the names (such as
``--quick``) go to each suite's ``main``. The machine description is printed first.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path

from bench import machine

#: Modules in bench/ that are not suites.
NOT_SUITES = {"machine"}


def suites() -> dict[str, str]:
    """Suite name -> the first line of its docstring, for every module with ``main``."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules([str(Path(__file__).resolve().parent)]):
        if info.ispkg or info.name.startswith("_") or info.name in NOT_SUITES:
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(module, "main", None)):
            found[info.name] = (module.__doc__ or "").strip().splitlines()[0]
    return dict(sorted(found.items()))


def main(argv: list[str] | None = None) -> int:
    """Run the named suites (all if none); returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    names = []
    while args and not args[0].startswith("-"):
        names.append(args.pop(0))
    available = suites()
    if args[:1] in (["--list"], ["-l"]):
        for name, summary in available.items():
            print(f"{name:14} {summary}")
        return 0
    if args[:1] in (["--help"], ["-h"]):
        print(__doc__)
        print("suites: " + ", ".join(available))
        return 0
    unknown = [name for name in names if name not in available]
    if unknown:
        print(
            f"unknown suite {', '.join(unknown)}; suites: {', '.join(available)}", file=sys.stderr
        )
        return 2
    print(machine.markdown())
    for name in names or list(available):
        print(f"## {name}\n", flush=True)
        run: Callable[[list[str]], None] = importlib.import_module(f"bench.{name}").main
        run(args)
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
