"""The backup of the embedded engines, file by file (services/backup.py): what goes in
(the databases, the media blobs, a manifest), what stays out (master keys, the operator
token, uploads in progress), and a restore giving back the same."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from services.backup import BackupError, backup, restore


def data_dir(root: Path) -> Path:
    data = root / "data"
    (data / "media" / "objects" / "ab").mkdir(parents=True)
    (data / "media" / "objects" / "ab" / "blob-1").write_bytes(b"\x89PNG picture")
    (data / "media" / "uploads").mkdir()
    (data / "media" / "uploads" / "part-1").write_bytes(b"half an upload")
    (data / "keys").mkdir()
    (data / "keys" / "master-1.key").write_bytes(b"secret master key")
    (data / "operator-token").write_text("caaso_secret\n")
    with sqlite3.connect(data / "caas.db") as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (n INTEGER)")
        db.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(100)])
    return data


def test_what_a_backup_holds_and_a_restore_gives_back(tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    writer = sqlite3.connect(data / "caas.db")  # a live writer, its last commit in the WAL
    writer.execute("INSERT INTO t VALUES (100)")
    writer.commit()
    done = backup(data, tmp_path / "backup", "1.2.3")
    writer.close()
    assert done.databases == ("caas.db",)
    manifest = json.loads((tmp_path / "backup" / "backup.json").read_text())
    assert manifest["caas_version"] == "1.2.3" and manifest["format"] == 1
    assert sorted(manifest["files"]) == ["caas.db", "media/objects/ab/blob-1"]
    restored = restore(tmp_path / "backup", tmp_path / "restored")
    assert restored.files == 2
    assert (tmp_path / "restored" / "media" / "objects" / "ab" / "blob-1").read_bytes() == (
        b"\x89PNG picture")
    with sqlite3.connect(tmp_path / "restored" / "caas.db") as db:
        assert db.execute("SELECT count(*), max(n) FROM t").fetchone() == (101, 100)
    for secret in ("keys", "operator-token", "media/uploads"):
        assert not (tmp_path / "restored" / secret).exists(), secret


def test_what_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no embedded store"):
        backup(tmp_path / "nothing", tmp_path / "b0", "1")
    data = data_dir(tmp_path)
    backup(data, tmp_path / "backup", "1")
    with pytest.raises(BackupError, match="is not empty"):
        backup(data, tmp_path / "backup", "1")
    with pytest.raises(BackupError, match="is not empty"):
        restore(tmp_path / "backup", data)
    (tmp_path / "backup" / "media" / "objects" / "ab" / "blob-1").write_bytes(b"\x89PNG other")
    with pytest.raises(BackupError, match="blob-1 is missing or damaged"):
        restore(tmp_path / "backup", tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
