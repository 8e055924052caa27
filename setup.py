"""Build the compiled engine from its Python source with Cython, when a compiler is present.

Every module in COMPILED_MODULE_NAMES (src/wsio/_engine/__init__.py) is ordinary Python
that also runs uncompiled: if Cython or a C compiler is missing (or WSIO_NO_EXTENSIONS=1),
the package installs pure.
"""

from __future__ import annotations

import ast
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


# The modules to compile (pure-Python mode, types in the .pxd beside each file), read
# from wsio._engine, which also checks at run time which ones are loaded compiled.
def _compiled_module_names() -> list[str]:
    with open(os.path.join("src", "wsio", "_engine", "__init__.py"), encoding="utf-8") as file:
        source = file.read()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.AnnAssign)
            and getattr(node.target, "id", "") == "COMPILED_MODULE_NAMES"
        ):
            return list(ast.literal_eval(node.value))  # type: ignore[arg-type]
    raise RuntimeError("COMPILED_MODULE_NAMES not found in src/wsio/_engine/__init__.py")


COMPILED_MODULES = _compiled_module_names()


class OptionalBuildExt(build_ext):
    """Compile what can be compiled; a failed compile leaves the pure module in place."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all
            print(
                f"wsio: building the compiled engine failed ({exc}); installing pure Python",
                file=sys.stderr,
            )

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(
                f"wsio: compiling {ext.name} failed ({exc}); it stays pure Python", file=sys.stderr
            )


def extensions() -> list:  # type: ignore[type-arg]
    if os.environ.get("WSIO_NO_EXTENSIONS") == "1":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    from setuptools import Extension

    exts = [
        Extension(
            name,
            [os.path.join("src", *name.split(".")) + ".py"],
            extra_compile_args=["-O3"],
        )
        for name in COMPILED_MODULES
    ]
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
        quiet=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
