"""Build the compiled engine from its Python source with Cython, when a compiler is present.

Every module in COMPILED_MODULE_NAMES (src/wsio/_engine/__init__.py) is ordinary Python
that also runs uncompiled: if Cython or a C compiler is missing (or WSIO_NO_EXTENSIONS=1),
the package installs pure, and the build says so in one line either way.
"""

from __future__ import annotations

import ast
import os
import sys

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
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

# Builds carry no debug info: -g0 overrides the -g in Python's own CFLAGS and the linker
# drops what the C runtime's objects bring (the 11 modules: 14.9 MB with -g, 2.7 MB without).
COMPILE_ARGS = ["-O3", "-g0"]
LINK_ARGS = ["-Wl,--strip-debug"]

# The commands that build extensions; setup.py also runs for metadata only (pip calls it
# several times per install), where the one-line verdict would only repeat.
_BUILDING = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop"}


def _say(line: str) -> None:
    # stderr: pip shows it with -v (and always when the build fails); `make` prints
    # wsio.COMPILED after installing, for the case where pip hides it.
    print(line, file=sys.stderr, flush=True)


def _shorten(text: str, width: int = 120) -> str:
    return text if len(text) <= width else text[: width - 5] + "[...]"


def _pure_warning(why: str) -> str:
    return (
        f"wsio: WARNING: {why}; wsio installs as pure Python (same behaviour, several "
        "times slower). `python -c 'import wsio; print(wsio.COMPILED)'` tells which is live."
    )


class OptionalBuildExt(build_ext):
    """Compile what can be compiled; a failed compile leaves the pure module in place."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if self.parallel is None:  # one module per core, unless -j says otherwise
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        self.wsio_failed: dict[str, str] = {}
        try:
            super().run()
        except Exception as exc:  # no compiler at all: nothing was built
            self.wsio_failed = {ext.name: _shorten(str(exc)) for ext in self.extensions}
        total = len(self.extensions)
        built = total - len(self.wsio_failed)
        if not self.wsio_failed:
            _say(f"wsio: compiled engine: {built} of {total} modules compiled with Cython")
        else:
            name, error = next(iter(self.wsio_failed.items()))
            _say(_pure_warning(f"{built} of {total} modules compiled ({name}: {error})"))

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            # The compiler printed its own errors above; one line says which step failed.
            self.wsio_failed[ext.name] = _shorten(str(exc).strip().splitlines()[-1])


class PureWheelIfNothingCompiled(bdist_wheel):
    """Tag the wheel py3-none-any when no module compiled (no compiler): it holds no .so."""

    def run(self) -> None:
        # bdist_wheel decides purity from the declared extensions before building; whether
        # any compiled is only known after the build (a second run_command is a no-op).
        if not self.skip_build:
            self.run_command("build")
            built = self.get_finalized_command("build_ext")
            failed = getattr(built, "wsio_failed", {})
            if self.distribution.ext_modules and len(failed) == len(built.extensions):
                self.distribution.ext_modules = []
                self.root_is_pure = True
        super().run()


def extensions() -> list:  # type: ignore[type-arg]
    building = bool(_BUILDING.intersection(sys.argv[1:]))
    if os.environ.get("WSIO_NO_EXTENSIONS") == "1":
        if building:
            _say(_pure_warning("WSIO_NO_EXTENSIONS=1: the compiled engine is not built"))
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if building:
            _say(_pure_warning("Cython is not installed: the compiled engine is not built"))
        return []
    from setuptools import Extension

    exts = [
        Extension(
            name,
            [os.path.join("src", *name.split(".")) + ".py"],
            extra_compile_args=COMPILE_ARGS,
            extra_link_args=LINK_ARGS,
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


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": OptionalBuildExt, "bdist_wheel": PureWheelIfNothingCompiled},
)
