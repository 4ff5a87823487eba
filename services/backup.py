"""Backup and restore of the embedded engines (`caas admin backup` / `caas admin restore`).

A backup is taken while the server serves. Each SQLite database of the data directory
(`caas.db`, the store; `search.db`, the search index) is copied with SQLite's online
backup API: one read transaction, a consistent snapshot, writers going on beside it. The
media blobs (`media/objects`, files written once under their key) are copied before the
snapshot and again after it, so the backup holds every blob the snapshot refers to —
one deleted meanwhile was copied the first time, one added meanwhile the second.
`backup.json` lists every file with its size and SHA-256.

Not in a backup, on purpose: the master keys (`CAAS_KEY_DIR`, by default `keys/` of the
data directory), which seal every app's data keys — a backup opens only beside them, so
keep them apart (a secret store), and an erasure's crypto-shredding reaches backups too;
the generated operator token and TLS files (secrets, made again on start); uploads in
progress and scratch space.

Restore, with the server stopped, fills an empty data directory: each file's checksum is
checked against the manifest first, each database's integrity after. Started on it, the
server migrates what an older version wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MANIFEST = "backup.json"
DATABASES = ("caas.db", "search.db")
BLOBS = Path("media") / "objects"
FORMAT = 1


class BackupError(Exception):
    """A backup or restore that cannot be done: the message says why; nothing was
    changed at the destination that a retry would trip on (it is left empty or
    removed)."""


@dataclass(frozen=True, slots=True)
class Summary:
    files: int
    bytes: int
    databases: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"files": self.files, "bytes": self.bytes, "databases": list(self.databases)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _empty(directory: Path) -> bool:
    return not directory.exists() or not any(directory.iterdir())


def _copy_blobs(data_dir: Path, destination: Path) -> None:
    """Copy the blobs not copied yet (a blob's file never changes once written)."""
    source = data_dir / BLOBS
    if not source.is_dir():
        return
    for path in source.rglob("*"):
        if not path.is_file():
            continue
        target = destination / path.relative_to(data_dir)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(path, target)
        except FileNotFoundError:  # deleted since it was listed: the first pass has it
            continue


def _snapshot(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (its WAL included)."""
    origin = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        origin.backup(copy)  # all pages in one step: one read transaction
    finally:
        copy.close()
        origin.close()


def backup(data_dir: Path, destination: Path, version: str) -> Summary:
    """Back the embedded engines of `data_dir` up into `destination` (new or empty)."""
    if not (data_dir / DATABASES[0]).is_file():
        raise BackupError(f"no embedded store in {data_dir} (CAAS_STORE=mongodb is backed "
                          "up with MongoDB's own tools: see docs/operations.md)")
    if not _empty(destination):
        raise BackupError(f"{destination} is not empty")
    destination.mkdir(parents=True, exist_ok=True)
    try:
        _copy_blobs(data_dir, destination)
        taken = datetime.now(UTC)
        databases = []
        for name in DATABASES:
            if (data_dir / name).is_file():
                _snapshot(data_dir / name, destination / name)
                databases.append(name)
        _copy_blobs(data_dir, destination)
        files: dict[str, dict[str, int | str]] = {
            str(path.relative_to(destination)): {"size": path.stat().st_size,
                                                 "sha256": _sha256(path)}
            for path in sorted(destination.rglob("*")) if path.is_file()}
        (destination / MANIFEST).write_text(json.dumps({
            "format": FORMAT, "caas_version": version, "taken": taken.isoformat(),
            "databases": databases, "files": files}, indent=1) + "\n")
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    return Summary(len(files), sum(int(f["size"]) for f in files.values()), tuple(databases))


def restore(source: Path, data_dir: Path) -> Summary:
    """Fill the empty `data_dir` from the backup in `source`, checked file by file."""
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} holds no readable {MANIFEST}: not a CAAS backup") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')!r} is not {FORMAT}")
    if not _empty(data_dir):
        raise BackupError(f"{data_dir} is not empty: restore into an empty data directory, "
                          "with the server stopped")
    files: dict[str, dict[str, object]] = manifest["files"]
    for name, expected in files.items():
        path = source / name
        if (not path.is_file() or path.stat().st_size != expected["size"]
                or _sha256(path) != str(expected["sha256"])):
            raise BackupError(f"{name} is missing or damaged in the backup (size or SHA-256 "
                              "differs from backup.json)")
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        for name in files:
            target = data_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target)
        for name in manifest["databases"]:
            connection = sqlite3.connect(data_dir / name)
            try:
                verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                connection.close()
            if verdict != "ok":
                raise BackupError(f"{name} fails SQLite's integrity check: {verdict}")
        os.sync()
    except BaseException:
        for child in data_dir.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return Summary(len(files), sum(int(str(f["size"])) for f in files.values()),
                   tuple(manifest["databases"]))
