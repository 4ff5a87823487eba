"""A start-up barrier for processes a test starts together (with this directory on
PYTHONPATH, Python imports this module at start-up).

The process stops at its first `Path.mkdir` of `$CAAS_DATA_DIR` — where opening the
SQLite store begins — by opening the FIFO `$CAAS_TEST_BARRIER` for reading and reading
it to its end: the test's opening of the FIFO for writing tells it that the process
has arrived, and its closing lets the process go (see tests/support/barrier.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_barrier = os.environ.get("CAAS_TEST_BARRIER")
_data_dir = os.environ.get("CAAS_DATA_DIR")

if _barrier and _data_dir:
    _mkdir = Path.mkdir
    _waiting = [True]

    def _mkdir_after_the_barrier(self: Path, *args: Any, **kwargs: Any) -> None:
        if _waiting and os.path.abspath(self) == os.path.abspath(str(_data_dir)):
            _waiting.clear()
            with open(str(_barrier), "rb") as fifo:
                fifo.read()
        _mkdir(self, *args, **kwargs)

    Path.mkdir = _mkdir_after_the_barrier  # type: ignore[method-assign]
