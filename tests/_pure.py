"""Load an engine module from its .py source, whatever the build, to compare both paths."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import wsio._engine

_ENGINE_DIR = Path(wsio._engine.__file__).parent


def load_pure(name: str) -> ModuleType:
    """The engine module ``name`` (e.g. "framing") executed from its Python source."""
    qualified = f"wsio._engine._pure_{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, _ENGINE_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return module
