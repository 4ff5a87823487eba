"""The scanner port against a real ClamAV daemon, and a finding quarantining a media."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from services.core.principal import Operator
from services.core.settings import load_settings
from services.media import models
from services.media.scanning import ClamdScanner, NoScanner
from services.runtime import Runtime, build_runtime
from tests.media.inprocess import ALICE, Clock, group, media_events, processor, uploaded
from tests.support.processes import free_port
from tests.support.servers import EICAR, EICAR_SIGNATURE, ExternalServer


async def test_clamd_finds_what_it_knows_and_passes_the_rest(
        clamd: ExternalServer, tmp_path: Path) -> None:
    scanner = ClamdScanner(clamd.url)
    infected = tmp_path / "infected.txt"
    infected.write_bytes(b"header\n" + EICAR + b"\ntrailer")
    clean = tmp_path / "clean.bin"
    clean.write_bytes(bytes(range(256)) * 4096)  # 1 MiB: several chunks
    found = await scanner.scan(infected)
    assert not found.clean and found.finding.startswith(EICAR_SIGNATURE)
    assert (await scanner.scan(clean)).clean
    assert (await NoScanner().scan(infected)).clean


async def test_an_unreachable_daemon_is_an_error_not_a_pass(tmp_path: Path) -> None:
    target = tmp_path / "x"
    target.write_bytes(EICAR)
    with pytest.raises(OSError):
        await ClamdScanner(f"127.0.0.1:{free_port()}").scan(target)


@pytest.fixture
async def scanned(tmp_path: Path, clamd: ExternalServer) -> AsyncIterator[Runtime]:
    built = await build_runtime(load_settings(
        data_dir=tmp_path, operator_token="caaso_" + "t" * 40, media_processors=0,
        media_clamd=clamd.url), clock=Clock())
    await built.apps.do_create_app(Operator(), "alpha", "Alpha", "")
    for user_id in ("alice", "bob"):
        await built.users.ensure_user("alpha", user_id)
    yield built
    await built.close()


async def test_a_finding_quarantines_the_media(scanned: Runtime) -> None:
    clock = scanned.clock
    assert isinstance(clock, Clock)
    conversation_id = await group(scanned)
    media = await uploaded(scanned, conversation_id, b"notes\n" + EICAR, "text/plain")
    claimed = await scanned.stores.media.claim(clock.now(), clock.now() + timedelta(minutes=1))
    assert claimed is not None
    done = await processor(scanned, clock).process(claimed)
    assert done is not None and done.state == models.QUARANTINED
    assert done.failure_reason.startswith(f"MALWARE_FOUND: {EICAR_SIGNATURE}")
    assert [e.type for e in await media_events(scanned)] == ["media.failed"]
    assert await scanned.blobs.stat(media.upload_key) is None  # never served, bytes gone
    shown = await scanned.media.get(ALICE, "alpha", media.media_id)
    assert shown.state == models.QUARANTINED
