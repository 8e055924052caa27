"""Build wsio's wheel the ways a user can and check what each one installs.

    python .ci/check_wheels.py            # `make packaging`, part of `make test`

1. With a compiler: the build says in one line how many modules it compiled; the wheel
   holds one extension per module in COMPILED_MODULE_NAMES, no generated ``.c`` file, no
   debug info, and imports with ``wsio.COMPILED`` true.
2. ``CC=false`` (a compiler that fails) and 3. ``WSIO_NO_EXTENSIONS=1``: the build warns
   that wsio installs as pure Python, the wheel is tagged ``py3-none-any`` and imports
   with ``wsio.COMPILED`` false.

Each build runs in a copy of the source tree (so no build/ directory is shared between
them) with ``pip wheel --no-build-isolation``: the packages of the running environment
(setuptools, Cython) build it, nothing is downloaded. Exits 1 with a line per failed check.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from wsio._engine import COMPILED_MODULE_NAMES as COMPILED_MODULES

ROOT = Path(__file__).resolve().parent.parent
# What a compiler's -g leaves in an object (DWARF); -g0 and --strip-debug leave none.
DEBUG = {".debug_info", ".debug_line", ".debug_str", ".debug_abbrev", ".debug_aranges"}

# Everything of the checkout but what builds leave behind (generated C is kept: Cython
# then skips modules whose .c is newer than their source, as in a developer's checkout).
IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "*.so", "__pycache__", ".autobahn",
    "reports", ".hypothesis", ".*_cache", "node_modules",
)  # fmt: skip


def build(tmp: Path, name: str, env: dict[str, str]) -> tuple[Path | None, str]:
    """Build a wheel from a fresh copy of the tree; return it (None if none) and pip's output."""
    tree = tmp / name
    shutil.copytree(ROOT, tree, ignore=IGNORE)
    out = tmp / f"{name}-wheel"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation"),
            *("-v", "--disable-pip-version-check", "-w", str(out)),
        ],
        cwd=tree,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = list(out.glob("wsio-*.whl"))
    return (wheels[0] if proc.returncode == 0 and wheels else None), proc.stdout + proc.stderr


def verdict(output: str) -> str:
    """The build's one line about the compiled engine ('' if it printed none)."""
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith("wsio: ")]
    return lines[-1] if lines else ""


def section_names(elf: bytes) -> list[str]:
    """The section names of a 64-bit little-endian ELF file (enough for x86-64 and arm64)."""
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    entsize, count, names_index = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [elf[shoff + i * entsize : shoff + (i + 1) * entsize] for i in range(count)]
    strtab_offset = struct.unpack_from("<Q", headers[names_index], 0x18)[0]
    names = []
    for header in headers:
        start = strtab_offset + struct.unpack_from("<I", header, 0)[0]
        names.append(elf[start : elf.index(b"\0", start)].decode())
    return names


def imports_compiled(wheel: Path) -> bool:
    """Unpack ``wheel`` beside it and import wsio from it alone (-S: not the editable
    checkout)."""
    tmp = wheel.parent
    where = tmp / "unpacked"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(where)
    proc = subprocess.run(
        [sys.executable, "-S", "-c", "import wsio; print(wsio.COMPILED, wsio.__file__)"],
        cwd=tmp,
        env={k: v for k, v in os.environ.items() if k != "WSIO_PURE"} | {"PYTHONPATH": str(where)},
        capture_output=True,
        text=True,
        check=True,
    )
    compiled, _, path = proc.stdout.strip().partition(" ")
    assert path.startswith(str(where)), f"imported {path}, not the wheel's copy"
    return compiled == "True"


def main() -> int:
    problems: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(f"  {'ok' if ok else 'FAILED'}: {what}", flush=True)
        if not ok:
            problems.append(what)

    total = len(COMPILED_MODULES)
    with tempfile.TemporaryDirectory(prefix="wsio-wheels-") as name:
        tmp = Path(name)
        start = time.monotonic()
        wheel, output = build(tmp, "compiled", {})
        line = verdict(output)
        print(f"compiled wheel ({time.monotonic() - start:.0f} s): {line}", flush=True)
        check(wheel is not None, "the wheel builds")
        if wheel is not None:
            check(line.startswith(f"wsio: compiled engine: {total} of {total} "), "says so")
            with zipfile.ZipFile(wheel) as zf:
                names = zf.namelist()
                shared = {n: zf.read(n) for n in names if n.endswith(".so")}
            modules = {n.split(".", 1)[0].replace("/", ".") for n in shared}
            check(modules == set(COMPILED_MODULES), f"one .so per compiled module ({total})")
            check(not [n for n in names if n.endswith(".c")], "no generated .c file")
            debug = sorted({s for so in shared.values() for s in section_names(so)} & DEBUG)
            size = sum(map(len, shared.values())) // 1024
            check(not debug, f"no debug info in the .so files ({size} KiB) {debug or ''}")
            check(imports_compiled(wheel), "imports with wsio.COMPILED true")
        for label, env, why in (
            ("no-compiler", {"CC": "false"}, f"0 of {total} modules compiled"),
            ("no-extensions", {"WSIO_NO_EXTENSIONS": "1"}, "WSIO_NO_EXTENSIONS=1"),
        ):
            start = time.monotonic()
            wheel, output = build(tmp, label, env)
            line = verdict(output)
            print(f"{label} wheel ({time.monotonic() - start:.0f} s): {line}", flush=True)
            check(wheel is not None, "the wheel builds")
            check(line.startswith("wsio: WARNING: ") and why in line, "warns: pure Python")
            if wheel is not None:
                with zipfile.ZipFile(wheel) as zf:
                    check(not [n for n in zf.namelist() if n.endswith((".so", ".c"))], "no .so")
                check(wheel.name.endswith("-py3-none-any.whl"), f"tagged pure: {wheel.name}")
                check(not imports_compiled(wheel), "imports with wsio.COMPILED false")
    if problems:
        print(f"packaging: {len(problems)} check(s) failed: {'; '.join(problems)}")
        return 1
    print("packaging: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
