"""Child processes started without fork(), and owned by their parent.

Forking a process that runs gRPC makes gRPC's fork handlers log "Other threads are
currently calling into gRPC, skipping fork() handlers" (uvloop's subprocess support
forks). `subprocess.Popen` spawns with vfork, which runs no fork handlers; `Child.wait`
then awaits the exit through a pidfd on the event loop, with no thread.

A child runs in a session of its own, so signals to the parent's process group (Ctrl-C
in a terminal, a supervisor signalling the group) reach only the parent, which stops
the child when it is done with it — after draining, for Envoy. Should the parent die
without doing so, the child gets SIGTERM (the parent-death signal, set by util-linux's
`setpriv` where it is installed, as it is on Debian).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Sequence


class Child:
    """A running child process."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            args = [setpriv, "--pdeathsig", "TERM", *args]
        # The callers' own executables (Envoy, this Python), never a user's input.
        self._popen = subprocess.Popen(args, stdin=subprocess.DEVNULL, env=env,  # noqa: S603
                                       start_new_session=True)

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has exited, else None."""
        return self._popen.poll()

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            self._popen.send_signal(signum)

    def terminate(self) -> None:
        if self.returncode is None:
            self._popen.terminate()

    def kill(self) -> None:
        if self.returncode is None:
            self._popen.kill()

    async def wait(self) -> int:
        """The exit code, once the process exits."""
        if (code := self.returncode) is not None:
            return code
        loop = asyncio.get_running_loop()
        descriptor = os.pidfd_open(self._popen.pid)
        try:
            exited: asyncio.Future[None] = loop.create_future()
            def readable() -> None:
                if not exited.done():
                    exited.set_result(None)

            loop.add_reader(descriptor, readable)
            try:
                await exited
            finally:
                loop.remove_reader(descriptor)
        finally:
            os.close(descriptor)
        return self._popen.wait()
