"""wsio installed without Cython (no compiler at install, no Cython at run time) works.

Each engine module is ordinary Python that ``import cython``; when that import fails the
module takes ``wsio._engine._cython`` instead. A subprocess with ``import cython`` made
to fail and ``WSIO_PURE=1`` imports every module wsio has and runs a message through the
protocol core, as a user of the pure fallback would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    sys.modules["cython"] = None  # as on a machine where Cython is not installed
    import wsio
    from wsio import _engine
    names = [m.name for m in pkgutil.walk_packages(wsio.__path__, "wsio.")]
    for name in names:
        if name.endswith("__main__"):
            continue
        importlib.import_module(name)
    assert not any(_engine.is_compiled(sys.modules[n]) for n in _engine.COMPILED_MODULE_NAMES)
    from wsio.protocol import ServerProtocol, TextMessage
    server = ServerProtocol()
    # RFC 6455 §5.7: a single-frame masked text message (contains "Hello")
    server.receive_data(bytes.fromhex("818537fa213d7f9f4d5158"))
    [event] = server.events_received()
    assert isinstance(event, TextMessage) and event.data == "Hello", event
    print(len(names))
    """
)


def test_every_module_imports_and_a_message_parses_without_cython() -> None:
    env = dict(os.environ, WSIO_PURE="1")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 20  # the walk found wsio's modules, not an empty package
