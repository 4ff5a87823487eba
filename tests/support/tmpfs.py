"""A data directory on a small file system of its own, to fill up: a tmpfs mounted in
a private mount namespace (`unshare`, as root). Only the process started in it sees
the file system, which is gone with it; the test reaches its files through
/proc/<pid>/root."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

MOUNT = 'mount -t tmpfs -o "$TMPFS_OPTIONS" caas-test "$CAAS_DATA_DIR"'


def tmpfs_unavailable() -> str:
    """Why a private tmpfs cannot be mounted here ("" when it can)."""
    if os.geteuid() != 0:
        return "mounting a tmpfs in a private mount namespace needs root"
    if shutil.which("unshare") is None:
        return "util-linux's unshare is not installed"
    with tempfile.TemporaryDirectory() as directory:
        tried = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", MOUNT],
            env={**os.environ, "TMPFS_OPTIONS": "size=64k", "CAAS_DATA_DIR": directory},
            capture_output=True, text=True, check=False)
    return "" if tried.returncode == 0 else f"cannot mount a tmpfs: {tried.stderr.strip()}"


def on_tmpfs(options: str, then: str = "") -> tuple[list[str], dict[str, str]]:
    """A command prefix (and its environment) that runs the rest in a private mount
    namespace with a tmpfs mounted on $CAAS_DATA_DIR with `options` ("size=8m",
    "ro,size=1m"), after the shell commands `then` (run there, whatever they return).
    The rest is exec'd: it keeps the pid."""
    script = f'{MOUNT} || exit 97\n{then}\nexec "$@"'
    return (["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"],
            {"TMPFS_OPTIONS": options})


def seen_by(pid: int, path: Path) -> Path:
    """`path` as the process `pid` sees it (in its mount namespace)."""
    return Path(f"/proc/{pid}/root") / path.resolve().relative_to("/")


def fill(directory: Path, name: str = "filler") -> Path:
    """Write zeros to `directory/name` until the file system is full; the file."""
    filler = directory / name
    chunk = bytes(64 * 1024)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
        for size in (4096, 512, 1):  # what is left, to the last byte
            try:
                while True:
                    os.write(fd, chunk[:size])
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return filler
