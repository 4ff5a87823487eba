"""Real servers for tests: start a process, watch its output, stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (for servers that cannot bind port 0)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free right now on 127.0.0.1 (each held until all are
    found, so that none is handed out twice)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


class Process:
    """A child process whose output lines are collected as they arrive."""

    def __init__(self, args: Sequence[str], *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, name: str = "") -> None:
        self.name = name or Path(args[0]).name
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._popen = subprocess.Popen(
            list(args), env={**os.environ, **(env or {})}, cwd=cwd,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._popen.stdout is not None
        for line in self._popen.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        return self._popen.pid

    def alive(self) -> bool:
        return self._popen.poll() is None

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 30.0,
                      start: int = 0) -> str:
        """The first output line (from index `start`) matching `predicate`.

        Raises TimeoutError, or RuntimeError if the process exits first.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[start:]:
                    if predicate(line):
                        return line
                if not self.alive() and not self._reader.is_alive():
                    raise RuntimeError(f"{self.name} exited ({self._popen.returncode}):\n"
                                       + "\n".join(self.lines[-30:]))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: no matching line in {timeout}s:\n"
                                       + "\n".join(self.lines[-30:]))
                self._changed.wait(min(left, 0.5))

    def send_signal(self, signum: int) -> None:
        if self.alive():
            os.killpg(self._popen.pid, signum)

    def wait(self, timeout: float) -> int:
        return self._popen.wait(timeout)

    def stop(self, timeout: float = 15.0, signum: int = signal.SIGTERM) -> int:
        """Signal the process group and wait; SIGKILL if it does not exit in time."""
        self.send_signal(signum)
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            return self._popen.wait(timeout)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until it holds; for servers with no readiness signal of their own."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout}s")
        time.sleep(0.05)


def tcp_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
