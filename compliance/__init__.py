"""The project's own Autobahn|Testsuite runner (``python -m compliance.run``)."""

from __future__ import annotations
