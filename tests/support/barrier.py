"""Release processes at one moment: each waits at a FIFO of its own (see
tests/support/start_barrier/sitecustomize.py) until every one has arrived."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path

START_BARRIER = Path(__file__).resolve().parent / "start_barrier"


class Barrier:
    def __init__(self, directory: Path, parties: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.fifos = [directory / f"barrier-{n}" for n in range(parties)]
        for fifo in self.fifos:
            os.mkfifo(fifo)

    def env(self, party: int) -> dict[str, str]:
        """The environment that makes a process party `party` of the barrier."""
        path = os.environ.get("PYTHONPATH")
        return {"CAAS_TEST_BARRIER": str(self.fifos[party]),
                "PYTHONPATH": os.pathsep.join(p for p in (str(START_BARRIER), path) if p)}

    def release_when_all_arrive(self, alive: Callable[[], bool], within: float = 60) -> None:
        """Wait until every party has arrived (its FIFO has a reader), then let them
        all go at once. Raises RuntimeError when `alive()` turns false first, and
        TimeoutError after `within` seconds."""
        deadline = time.monotonic() + within
        arrived: list[int] = []
        try:
            for fifo in self.fifos:
                while True:
                    try:  # fails with ENXIO until the process opened its end
                        arrived.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                        break
                    except OSError as error:
                        if error.errno != errno.ENXIO:
                            raise
                    if not alive():
                        raise RuntimeError("a process exited before the barrier")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"not every process reached the barrier in {within}s")
                    time.sleep(0.01)  # polls: arriving comes with no event to wait for
        finally:
            for fd in arrived:
                os.close(fd)
