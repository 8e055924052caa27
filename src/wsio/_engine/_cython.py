"""What the engine modules need of the ``cython`` module when Cython is not installed.

In compiled code ``import cython`` is resolved by the compiler and this file is never
used; in pure mode without Cython installed, the engine imports this in its place.
Only the names the engine uses are here: ``compiled``, no-op decorators, the C type
names (used in annotations and in ``declare``/``cast``, which keep the Python value) and
the C-only helpers behind ``if cython.compiled:`` branches, which never run here.
tests/test_pure_fallback.py imports every engine module with Cython absent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

compiled = False


def _identity(func: _F) -> _F:
    return func


def _directive(*_args: object, **_kwargs: object) -> Callable[[_F], _F]:
    return _identity


cfunc = ccall = inline = final = cclass = _identity
locals = returns = exceptval = boundscheck = wraparound = cdivision = _directive

# C types: only ever passed to declare/cast or named in annotations.
int = uint = longlong = ulonglong = Py_ssize_t = size_t = bint = char = uchar = double = object
p_char = p_uchar = pointer = NULL = None


def declare(_type: object = None, value: Any = None, **_fields: object) -> Any:
    """``x = cython.declare(T, v)`` is ``x = v`` in Python."""
    return value


def cast(_type: object, value: Any, typecheck: bool = False) -> Any:
    """``cython.cast(T, v)`` is ``v`` in Python."""
    return value


def address(value: Any) -> Any:
    """Only reached inside ``if cython.compiled:`` branches."""
    raise RuntimeError("cython.address has no meaning in pure Python")
