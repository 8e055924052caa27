"""The machine a benchmark ran on, for the head of every results table.

``describe()`` gathers it as (label, value) pairs; ``markdown()`` renders them.
Run as ``python -m bench.machine`` to print it.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
from importlib import metadata

#: The libraries wsio is measured against (PyPI names).
PEERS = ("websockets", "aiohttp", "picows", "websocket-client")


def _cpuinfo() -> dict[str, str]:
    """The first processor's entries of /proc/cpuinfo (Linux), else nothing."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> list[tuple[str, str]]:
    """(label, value) pairs: CPU, cores, OS, Python, wsio and its engine, peers, date."""
    cpu = _cpuinfo()
    model = cpu.get("model name") or platform.processor() or platform.machine()
    flags = set(cpu.get("flags", "").split())
    vector = [f for f in ("sse4_2", "avx2", "avx512f", "asimd") if f in flags]
    if "hypervisor" in flags:
        model += " (virtual machine)"
    cores = f"{os.cpu_count()}"
    if hasattr(os, "sched_getaffinity"):
        cores += f" ({len(os.sched_getaffinity(0))} usable)"

    import wsio
    from wsio import _engine

    engine = "compiled (Cython " + _version("cython") + ")" if wsio.COMPILED else "pure Python"
    if _engine.PURE_REQUESTED:
        engine += ", WSIO_PURE=1"
    return [
        ("CPU", model + (f"; {' '.join(vector)}" if vector else "")),
        ("cores", cores),
        ("OS", platform.platform()),
        (
            "Python",
            f"{platform.python_implementation()} {platform.python_version()} "
            f"({platform.python_compiler()})",
        ),
        ("wsio", f"{wsio.__version__}, engine {engine}"),
        ("peers", ", ".join(f"{name} {_version(name)}" for name in PEERS)),
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("command", _command()),
    ]


def _command() -> str:
    """How this process was started, as ``python -m bench...`` (its module and arguments)."""
    stem = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    module = "bench" if stem == "__main__" else f"bench.{stem}"
    return " ".join(["python -m", module, *sys.argv[1:]])


def markdown(pairs: list[tuple[str, str]] | None = None) -> str:
    """The description as a markdown list."""
    return "".join(f"- {label}: {value}\n" for label, value in pairs or describe())


if __name__ == "__main__":
    print(markdown(), end="")
