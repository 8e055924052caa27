"""``python -m wsio`` (and the ``wsio`` script): ``serve``, ``connect``, ``bench``.

See :mod:`wsio.cli` for the commands and their options.
"""

from __future__ import annotations

import sys

from wsio.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
