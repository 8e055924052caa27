"""What the engine modules need of the ``cython`` module when Cython is not installed.

In compiled code ``import cython`` is resolved by the compiler and this file is never
used; in pure mode without Cython installed, the engine imports this in its place.
Only the names the engine uses are here: ``compiled`` and a few no-op decorators.
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
