"""Sphinx helpers for wsio's documentation, generated from the code so that nothing drifts.

- ``.. exception-tree:: wsio.exceptions`` renders the exception hierarchy by walking the
  classes of the module's ``__all__`` (bases, other names, first docstring paragraph).
- ``.. limits-table:: wsio._engine.limits`` tabulates a module's ``DEFAULT_*`` constants
  with their values and ``#:`` comments.
- ``.. module-data:: wsio.frames`` documents the constants and type aliases in a
  module's ``__all__`` that autodoc leaves out (it documents module data only where a
  ``#:`` comment sits in the same module), each with the comment where it is defined.
- ``.. reexports:: wsio`` lists the names a package re-exports, grouped by the module
  that documents them.
- ``.. cli-help:: serve`` prints what ``wsio serve --help`` prints, from the real parsers
  of :mod:`wsio.cli` (no argument: the top-level ``wsio --help``).
- References to a name by another path than the documented one (``wsio.Upgrader`` for
  ``wsio.handshake.Upgrader``, ``wsio._connection.Options`` for ``wsio.sync.Options``)
  resolve to the documented object when both paths name the same object.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import io
import os
import sys
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective

# Python object types whose identity names them (a constant's value does not).
_NAMED_TYPES = {
    "class",
    "exception",
    "function",
    "method",
    "classmethod",
    "staticmethod",
    "property",
    "module",
}


def import_path(path: str) -> Any:
    """The object a dotted path names (longest importable module, then attributes)."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def first_paragraph(obj: object) -> str:
    """The first paragraph of ``obj``'s docstring, on one line."""
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _summary(cls: type, bases: list[type]) -> str:
    """One bullet's text: the class, its docstring's first paragraph, its other bases."""
    text = f":exc:`~{cls.__module__}.{cls.__qualname__}` — {first_paragraph(cls)}"
    others = [
        f"``{base.__name__}``"
        for base in cls.__bases__
        if base not in bases and base not in (Exception, BaseException)
    ]
    if others:
        text += f" (also {', '.join(others)})"
    return text


class ExceptionTree(SphinxDirective):
    """The exception hierarchy of a module, built from its classes."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module = importlib.import_module(self.arguments[0])
        exported = {name: getattr(module, name) for name in module.__all__}
        classes = {n: c for n, c in exported.items() if isinstance(c, type)}
        members = [c for n, c in classes.items() if c.__name__ == n]
        aliases = {n: c for n, c in classes.items() if c.__name__ != n}
        # Each class hangs under its first base from this module; other bases are named.
        children: dict[type | None, list[type]] = {}
        for cls in members:
            parent = next((b for b in cls.__bases__ if b in members), None)
            children.setdefault(parent, []).append(cls)
        lines: list[str] = []

        def add(cls: type, depth: int) -> None:
            indent = "  " * depth
            parent = next((b for b in cls.__bases__ if b in members), None)
            lines.append(f"{indent}- {_summary(cls, [parent] if parent else [])}")
            for alias, target in aliases.items():
                if target is cls:
                    lines.append(f"{indent}  ``{alias}`` is another name for it.")
            kids = children.get(cls, [])
            if kids:
                lines.append("")
                for kid in kids:
                    add(kid, depth + 1)
                lines.append("")

        for root in children.get(None, []):
            add(root, 0)
        node = nodes.container(classes=["exception-tree"])
        self.state.nested_parse(StringList(lines, source=self.arguments[0]), 0, node)
        return [node]


class Reexports(SphinxDirective):
    """The names a package re-exports, by the module (given as content) that has them;
    ``:own:`` names the ones the page documents itself."""

    required_arguments = 1
    has_content = True
    option_spec: ClassVar[dict[str, Any]] = {"own": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        package = importlib.import_module(self.arguments[0])
        sources = [importlib.import_module(line.strip()) for line in self.content if line.strip()]
        grouped: dict[str, list[str]] = {m.__name__: [] for m in sources}
        missing: list[str] = []
        own = {name.strip() for name in self.options.get("own", "").split(",")}
        for name in package.__all__:
            if name in own:
                continue
            source = next(
                (m for m in sources if name in getattr(m, "__all__", ())),
                None,
            )
            if source is None:
                missing.append(name)
            else:
                grouped[source.__name__].append(name)
        if missing:
            raise self.error(f"{', '.join(missing)}: in no module given to reexports")
        lines: list[str] = []
        for module_name, found in grouped.items():
            refs = ", ".join(f":py:obj:`~{module_name}.{n}`" for n in found)
            lines += [f"- :mod:`{module_name}`: {refs}", ""]
        node = nodes.container(classes=["reexports"])
        self.state.nested_parse(StringList(lines, source=self.arguments[0]), 0, node)
        return [node]


def _limit(keyword: str, value: object) -> str:
    """A limit's value as a reader wants it: 16 MiB for a size in bytes, 10 s for a
    timeout, a count as it is."""
    if isinstance(value, tuple):
        return " / ".join(_limit(keyword, v) for v in value)
    if isinstance(value, float):
        return f"{value:g} s"
    in_bytes = keyword.endswith(("_size", "_limit", "_line"))
    if in_bytes and isinstance(value, int) and value >= 1024:
        for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
            if value % scale == 0:
                return f"{value // scale} {unit} ({value} bytes)"
    return repr(value)


class LimitsTable(SphinxDirective):
    """A table of a module's ``DEFAULT_*`` constants: keyword, value, comment."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        module = importlib.import_module(name)
        docs = ModuleAnalyzer.for_module(name).find_attr_docs()
        rows = ["   * - keyword", "     - default", "     - what it bounds"]
        comment = ""
        for attr in list(vars(module)):  # in the order the module defines them
            if not attr.startswith("DEFAULT_"):
                continue
            # A constant without a comment of its own shares the one above it.
            comment = " ".join(" ".join(docs.get(("", attr), [comment])).split())
            keyword = attr.removeprefix("DEFAULT_").lower()
            rows += [
                f"   * - ``{keyword}``",
                f"     - {_limit(keyword, getattr(module, attr))}",
                f"     - {comment}",
            ]
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 22 22 56", "", *rows]
        node = nodes.container(classes=["limits-table"])
        self.state.nested_parse(StringList(lines, source=name), 0, node)
        return [node]


def _attr_doc(module_name: str, name: str, depth: int = 4) -> tuple[str, list[str]]:
    """The module where ``name`` is assigned (following ``from`` imports) and the
    ``#:`` comment above it there."""
    try:
        analyzer = ModuleAnalyzer.for_module(module_name)
        docs = analyzer.find_attr_docs()
    except Exception:  # no source: a compiled or built-in module
        return module_name, []
    if ("", name) in docs:
        return module_name, list(docs[("", name)])
    if depth > 0:
        for statement in ast.walk(ast.parse(analyzer.code)):
            if isinstance(statement, ast.ImportFrom) and statement.module:
                for alias in statement.names:
                    if (alias.asname or alias.name) == name and statement.module.startswith("wsio"):
                        return _attr_doc(statement.module, alias.name, depth - 1)
    return module_name, []


class ModuleData(SphinxDirective):
    """Constants and aliases of a module's ``__all__`` that autodoc does not document."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        module = importlib.import_module(name)
        own_docs = ModuleAnalyzer.for_module(name).find_attr_docs()
        node = nodes.container(classes=["module-data"])
        for attr in module.__all__:
            obj = getattr(module, attr)
            if ("", attr) in own_docs or inspect.isclass(obj) or inspect.isroutine(obj):
                continue  # autodoc documents these itself
            value = repr(obj)
            lines = [f".. py:data:: {attr}", f"   :module: {name}"]
            if len(value) <= 80 and "\n" not in value:
                lines.append(f"   :value: {value}")
            home, doc = _attr_doc(name, attr)
            lines += ["", *(f"   {line}" for line in doc), ""]
            entry = nodes.container()
            self.state.nested_parse(StringList(lines, source=name), 0, entry)
            # Names in the comment are relative to the module that holds it.
            for xref in entry.findall(pending_xref):
                xref["wsio:home"] = home
            node += entry.children
        return [node] if len(node) else []


#: Columns the ``--help`` text is wrapped to: a terminal's 80, as a user would see it.
HELP_COLUMNS = 80


def cli_help(command: str | None = None) -> str:
    """What ``wsio [COMMAND] --help`` prints, from :func:`wsio.cli.main` itself, as ``wsio``
    in an 80-column terminal."""
    from wsio.cli import main

    argv = [command, "--help"] if command else ["--help"]
    out = io.StringIO()
    saved = sys.argv[0] if sys.argv else "", os.environ.get("COLUMNS")
    if not sys.argv:
        sys.argv.append("")
    # argparse wraps to $COLUMNS; the program name comes from argv[0] (the script's).
    sys.argv[0], os.environ["COLUMNS"] = "wsio", str(HELP_COLUMNS)
    try:
        with contextlib.redirect_stdout(out):
            main(argv)
    except SystemExit as done:  # --help prints, then exits 0
        if done.code not in (0, None):
            raise
    finally:
        sys.argv[0] = saved[0]
        if saved[1] is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved[1]
    return out.getvalue().rstrip("\n")


class CliHelp(SphinxDirective):
    """A command's ``--help`` text as a literal block."""

    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        command = self.arguments[0] if self.arguments else None
        try:
            text = cli_help(command)
        except SystemExit:
            raise self.error(f"wsio {command or ''} --help failed") from None
        # The page is rebuilt when a command's module (its options, its docstring) changes.
        names = ["wsio.cli", "wsio.cli.common"] + ([f"wsio.cli.{command}"] if command else [])
        for name in names:
            source = getattr(sys.modules.get(name), "__file__", None)
            if source:
                self.env.note_dependency(source)
        block = nodes.literal_block(text, text, language="text")
        block["classes"].append("cli-help")
        return [block]


def _documented(env: BuildEnvironment) -> tuple[dict[tuple[str, int], str], dict[int, str]]:
    """Maps to the documented names: by (last name, object id), and by object id alone."""
    cached = getattr(env, "_wsio_documented", None)
    if cached is not None:
        return cached
    by_name: dict[tuple[str, int], str] = {}
    by_id: dict[int, str] = {}
    for fullname, entry in env.get_domain("py").objects.items():
        if entry.aliased:
            continue
        try:
            obj = import_path(fullname)
        except (ImportError, AttributeError):
            continue
        by_name.setdefault((fullname.rpartition(".")[2], id(obj)), fullname)
        if entry.objtype in _NAMED_TYPES:
            by_id.setdefault(id(obj), fullname)
    env._wsio_documented = (by_name, by_id)  # type: ignore[attr-defined]
    return by_name, by_id


def _candidates(node: pending_xref) -> list[str]:
    """Dotted paths a reference may mean: as written, then relative to the module and
    class it was written in (the module of the docstring it came from, too)."""
    target: str = node["reftarget"]
    modules = [node.get("py:module") or "", node.get("wsio:home") or ""]
    # "docstring of wsio.wsutil.reader.Reader": names there are the defining module's.
    source = str(node.source or "")
    if "docstring of " in source:
        owner = source.rpartition("docstring of ")[2].split(":")[0]
        parts = owner.split(".")
        modules += [".".join(parts[:n]) for n in range(len(parts) - 1, 0, -1)]
    # In a signature, the annotation's names are those of the function's own module.
    signature = node.parent
    while signature is not None and not isinstance(signature, addnodes.desc_signature):
        signature = signature.parent
    if signature is not None and signature.get("module") and signature.get("fullname"):
        try:
            owner_obj = import_path(f"{signature['module']}.{signature['fullname']}")
        except (ImportError, AttributeError):
            owner_obj = None
        owner_module = getattr(owner_obj, "__module__", None)
        if isinstance(owner_module, str):
            modules.append(owner_module)
    paths = [target]
    for module in filter(None, modules):
        if node.get("py:class"):
            paths.append(f"{module}.{node['py:class']}.{target}")
        paths.append(f"{module}.{target}")
    return paths


def _is_external(obj: object) -> bool:
    """True for the standard library's objects and Cython's pure-mode types."""
    module = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
    if not isinstance(module, str):
        return False
    top = module.partition(".")[0]
    return top in sys.stdlib_module_names or top in ("builtins", "cython", "typing_extensions")


def _external_import(module_name: str, name: str) -> bool:
    """True if ``module_name`` imports ``name`` from outside wsio (also under
    ``TYPE_CHECKING``, where the name never exists at run time)."""
    module = sys.modules.get(module_name)
    try:
        tree = ast.parse(inspect.getsource(module)) if module else None
    except (OSError, TypeError):
        return False
    for statement in ast.walk(tree) if tree else ():
        if (
            isinstance(statement, ast.ImportFrom)
            and statement.module
            and any((alias.asname or alias.name) == name for alias in statement.names)
        ):
            return not statement.module.startswith("wsio")
    return False


def _cython_type(name: str) -> bool:
    """True for a Cython pure-mode type such as ``Py_ssize_t``."""
    try:
        import cython
    except ImportError:
        return False
    return hasattr(cython, name)


def _public_ids(env: BuildEnvironment) -> set[int]:
    """Ids of every object a documented module lists in ``__all__``."""
    cached = getattr(env, "_wsio_public", None)
    if cached is None:
        cached = set()
        for name, entry in env.get_domain("py").objects.items():
            if entry.objtype != "module":
                continue
            module = sys.modules.get(name)
            for attr in getattr(module, "__all__", ()):
                cached.add(id(getattr(module, attr, None)))
        env._wsio_public = cached  # type: ignore[attr-defined]
    return cached


def resolve_other_path(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.Element | None:
    """Resolve a reference to the documented name of the object it names.

    ``wsio.Upgrader`` is documented as ``wsio.handshake.Upgrader``; a name in a
    docstring may be relative to the module that defines it. A name that exists but is
    outside the documented API (the standard library, a private alias such as
    ``View``) stays plain text; a name that does not exist is left to warn.
    """
    if node.get("refdomain") != "py":
        return None
    by_name, by_id = _documented(env)
    for path in _candidates(node):
        try:
            obj = import_path(path)
        except (ImportError, AttributeError):
            continue
        documented = by_name.get((path.rpartition(".")[2], id(obj))) or by_id.get(id(obj))
        if documented is not None:
            if documented == node["reftarget"]:
                return None
            return env.get_domain("py").resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], documented, node, contnode
            )
        if _is_external(obj) or (path.startswith("wsio") and id(obj) not in _public_ids(env)):
            return contnode
    target = node["reftarget"]
    modules = {path.rpartition(".")[0] for path in _candidates(node)[1:]}
    if _cython_type(target) or any(_external_import(m, target.partition(".")[0]) for m in modules):
        return contnode
    return None


def consecutive_headings(
    app: Sphinx, relative_path: Any, parent_docname: str, content: list[str]
) -> None:
    """Included Markdown (bench and compliance results) may jump from ``#`` to ``###``;
    lift each heading to at most one level below the one before it."""
    if not str(relative_path).endswith(".md"):
        return
    lines = content[0].split("\n")
    previous = 0
    fenced = False
    for index, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        hashes = len(line) - len(line.lstrip("#"))
        if fenced or not 1 <= hashes <= 6 or line[hashes : hashes + 1] != " ":
            continue
        level = min(hashes, previous + 1)
        lines[index] = "#" * level + line[hashes:]
        previous = level
    content[0] = "\n".join(lines)


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives and the reference resolver."""
    app.add_directive("exception-tree", ExceptionTree)
    app.add_directive("reexports", Reexports)
    app.add_directive("limits-table", LimitsTable)
    app.add_directive("module-data", ModuleData)
    app.add_directive("cli-help", CliHelp)
    app.connect("missing-reference", resolve_other_path)
    app.connect("include-read", consecutive_headings)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
