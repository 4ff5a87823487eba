"""The search index contract, on both engines: the embedded SQLite FTS5 index and
Elasticsearch (osmem-server behind tests/support/es_proxy.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.core.tls import self_signed
from services.search.elastic_index import ElasticIndex
from services.search.index import (
    ConversationDoc,
    ConversationKey,
    ConversationQuery,
    Deletion,
    Hit,
    MessageDoc,
    MessageKey,
    MessageQuery,
    Order,
    Scan,
    SearchIndex,
    Write,
)
from services.search.sqlite_index import SqliteSearchIndex
from services.search.text import parse_query
from tests.support.processes import free_port
from tests.support.servers import SearchServer, _es_proxy

T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
APP = "alpha"


class Engine:
    """An index under test, and how to make its writes searchable (Elasticsearch
    refreshes once a second by itself; the tests don't wait for that)."""

    def __init__(self, index: SearchIndex) -> None:
        self.index = index

    async def apply(self, *writes: Write, app_id: str = APP) -> None:
        await self.index.apply(app_id, list(writes))
        await self.settle()

    async def settle(self) -> None:
        if isinstance(self.index, ElasticIndex):
            await self.index.refresh()

    async def find(self, text: str = "", app_id: str = APP, **fields: object
                   ) -> list[tuple[str, int]]:
        return [(h.conversation_id, h.sequence) for h in await self.hits(text, app_id,
                                                                          **fields)]

    async def hits(self, text: str = "", app_id: str = APP, **fields: object) -> list[Hit]:
        order = fields.pop("order", Order.RELEVANCE if text else Order.NEWEST)
        limit = fields.pop("limit", 50)
        query = MessageQuery(app_id, parse_query(text), order, limit, **fields)  # type: ignore[arg-type]
        return await self.index.search_messages(query)


@pytest.fixture(params=["embedded", "elasticsearch"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    index: SearchIndex
    if request.param == "embedded":
        index = await SqliteSearchIndex.open(tmp_path / "search.db")
    else:
        server: SearchServer = request.getfixturevalue("search_engine")
        index = ElasticIndex.connect(server.url, "", f"t{uuid.uuid4().hex[:10]}")
    await index.migrate()
    yield Engine(index)
    await index.close()


def message(conversation: str, sequence: int, text: str, seconds: float = 0,
            sender: str = "alice", **fields: object) -> MessageDoc:
    return MessageDoc(APP, conversation, sequence, sender, text,
                      T0 + timedelta(seconds=seconds), **fields)  # type: ignore[arg-type]


def writes(*docs: MessageDoc | ConversationDoc, start: int = 1) -> list[Write]:
    return [Write(start + n, doc) for n, doc in enumerate(docs)]


async def test_text_is_folded_segmented_and_split(engine: Engine) -> None:
    await engine.apply(*writes(
        message("c1", 1, "Rendez-vous au Café de Flore"),
        message("c1", 2, "東京タワーに行きましょう", 1),
        message("c1", 3, "the menu: https://example.com/menu_du_jour 🎉🎉", 2),
        message("c1", 4, "ÇA VA? Ölçü", 3)))
    assert await engine.find("cafe") == [("c1", 1)]
    assert await engine.find("CAFÉ flore") == [("c1", 1)]
    assert await engine.find("東京") == [("c1", 2)]  # no spaces in Japanese
    assert await engine.find("行き") == [("c1", 2)]
    assert await engine.find("example") == [("c1", 3)]  # a URL's parts
    assert await engine.find("example.com") == [("c1", 3)]
    assert await engine.find("jour") == [("c1", 3)]
    assert await engine.find("ca va olcu") == [("c1", 4)]
    assert await engine.find("🎉") == [("c1", 1), ("c1", 2), ("c1", 3), ("c1", 4)][::-1] \
        or await engine.find("🎉") == []  # an emoji alone is no word: nothing, or all
    assert await engine.find("tokyo") == []


async def test_words_phrases_and_prefixes(engine: Engine) -> None:
    await engine.apply(*writes(
        message("c1", 1, "the quick brown fox"),
        message("c1", 2, "brown bread, quick", 1),
        message("c1", 3, "quickly done", 2)))
    assert sorted(await engine.find("quick brown")) == [("c1", 1), ("c1", 2)]
    assert await engine.find('"quick brown"') == [("c1", 1)]
    assert sorted(await engine.find("quick*")) == [("c1", 1), ("c1", 2), ("c1", 3)]
    assert await engine.find("quick") != [] and ("c1", 3) not in await engine.find("quick")


async def test_snippets_mark_the_matched_words(engine: Engine) -> None:
    await engine.apply(*writes(message("c1", 1, "Lunch at the Café de Flore tomorrow?")))
    [hit] = await engine.hits("cafe")
    assert "".join(text for text, _ in hit.snippet) == "Lunch at the Café de Flore tomorrow?"
    assert [text for text, matched in hit.snippet if matched] == ["Café"]


async def test_long_texts_are_cut_around_the_match(engine: Engine) -> None:
    text = " ".join(f"word{n}" for n in range(300)) + " needle " + \
        " ".join(f"tail{n}" for n in range(300))
    await engine.apply(*writes(message("c1", 1, text)))
    [hit] = await engine.hits("needle")
    shown = "".join(part for part, _ in hit.snippet)
    assert "needle" in shown and len(shown) < 400
    assert shown.startswith("…") and shown.endswith("…")


async def test_filters(engine: Engine) -> None:
    await engine.apply(*writes(
        message("c1", 1, "plain hello", 0, "alice"),
        message("c1", 2, "hello with a picture", 1, "bob", attachment_kinds=frozenset({"image"})),
        message("c1", 3, "hello in a thread", 2, "bob", thread_root=1),
        message("c2", 1, "hello @carol", 3, "alice", mention_ids=frozenset({"carol"})),
        message("c2", 2, "hello with a file", 4, "carol",
                attachment_kinds=frozenset({"file", "link"}))))
    assert sorted(await engine.find("hello", sender_ids=frozenset({"bob"}))) == [
        ("c1", 2), ("c1", 3)]
    assert sorted(await engine.find("hello", conversations=frozenset({"c2"}))) == [
        ("c2", 1), ("c2", 2)]
    assert sorted(await engine.find("hello", has_attachments=True)) == [("c1", 2), ("c2", 2)]
    assert sorted(await engine.find("hello", has_attachments=False)) == [
        ("c1", 1), ("c1", 3), ("c2", 1)]
    assert await engine.find("hello", attachment_kinds=frozenset({"link"})) == [("c2", 2)]
    assert await engine.find("hello", in_thread=True) == [("c1", 3)]
    assert ("c1", 3) not in await engine.find("hello", in_thread=False)
    assert await engine.find("hello", mentioned_user_id="carol") == [("c2", 1)]
    assert await engine.find("", start_time=T0 + timedelta(seconds=1),
                             end_time=T0 + timedelta(seconds=3)) == [("c1", 3), ("c1", 2)]
    # Filters alone, newest first.
    assert await engine.find("", sender_ids=frozenset({"alice"})) == [("c2", 1), ("c1", 1)]


async def test_windows_limit_each_conversation_from_a_time(engine: Engine) -> None:
    await engine.apply(*writes(
        message("c1", 1, "before joining", 0), message("c1", 2, "after joining", 10),
        message("c2", 1, "other conversation", 5), message("c3", 1, "not a member", 6)))
    windows = {"c1": T0 + timedelta(seconds=5), "c2": T0}
    assert await engine.find("", windows=windows) == [("c1", 2), ("c2", 1)]
    assert await engine.find("joining", windows=windows) == [("c1", 2)]
    assert await engine.find("", windows={}) == []


async def test_apps_never_meet(engine: Engine) -> None:
    await engine.apply(*writes(message("c1", 1, "secret plans")))
    other = MessageDoc("beta", "c1", 1, "mallory", "secret plans too", T0)
    await engine.apply(Write(1, other), app_id="beta")
    assert await engine.find("secret") == [("c1", 1)]
    assert [h.conversation_id for h in await engine.hits("secret", app_id="beta")] == ["c1"]
    [hit] = await engine.hits("secret", app_id="beta")
    assert "too" in "".join(text for text, _ in hit.snippet)
    assert await engine.find("", app_id="gamma") == []


@pytest.mark.parametrize("order", [Order.NEWEST, Order.OLDEST, Order.RELEVANCE])
async def test_pages_follow_each_other_without_gaps_or_repeats(engine: Engine, order: Order
                                                               ) -> None:
    docs = [message("c1", n, "apple " * (1 + n % 4) + f"number {n}", n) for n in range(1, 24)]
    await engine.apply(*writes(*docs))
    seen: list[tuple[str, int]] = []
    after = None
    for _ in range(10):  # 5 pages; more would be a page repeated
        hits = await engine.hits("apple", order=order, limit=5, after=after)
        seen += [(h.conversation_id, h.sequence) for h in hits]
        if len(hits) < 5:
            break
        after = hits[-1].cursor
    assert sorted(seen) == sorted(("c1", n) for n in range(1, 24))
    assert len(seen) == len(set(seen))
    if order is Order.NEWEST:
        assert seen == [("c1", n) for n in range(23, 0, -1)]
    if order is Order.OLDEST:
        assert seen == [("c1", n) for n in range(1, 24)]


async def test_relevance_puts_better_matches_first(engine: Engine) -> None:
    await engine.apply(*writes(
        message("c1", 1, "a long message that mentions budget once among many other words"),
        message("c1", 2, "budget budget budget", 1)))
    assert await engine.find("budget", order=Order.RELEVANCE) == [("c1", 2), ("c1", 1)]


async def test_writes_are_idempotent_by_position(engine: Engine) -> None:
    edited = message("c1", 1, "new text", edit_time=T0 + timedelta(minutes=1))
    await engine.apply(Write(1, message("c1", 1, "old text")), Write(2, edited))
    await engine.apply(Write(1, message("c1", 1, "old text")))  # a replay
    assert await engine.find("old") == []
    [hit] = await engine.hits("new")
    assert hit.edit_time == T0 + timedelta(minutes=1)


async def test_a_deleted_message_stays_deleted_under_replays(engine: Engine) -> None:
    await engine.apply(Write(1, message("c1", 1, "regrettable words")),
                       Write(2, Deletion(MessageKey(APP, "c1", 1))))
    assert await engine.find("regrettable") == []
    await engine.apply(Write(1, message("c1", 1, "regrettable words")))
    assert await engine.find("regrettable") == []
    assert await engine.index.count(APP) == (0, 0)


async def test_a_deleted_conversation_takes_its_messages(engine: Engine) -> None:
    await engine.apply(
        Write(1, ConversationDoc(APP, "c1", "Project Falcon", "group", T0)),
        Write(2, message("c1", 1, "falcon status")), Write(3, message("c2", 1, "falcon too")),
        Write(4, Deletion(ConversationKey(APP, "c1"))))
    assert await engine.find("falcon") == [("c2", 1)]
    assert await engine.index.search_conversations(
        ConversationQuery(APP, parse_query("falcon"), 10)) == []


async def test_conversations_by_title_and_visibility(engine: Engine) -> None:
    await engine.apply(*writes(
        ConversationDoc(APP, "g1", "Weekend hiking", "group", T0),
        ConversationDoc(APP, "g2", "Hiking gear swap", "group", T0),
        ConversationDoc(APP, "ch", "Hiking club", "channel", T0),
        ConversationDoc(APP, "g3", "Cooking", "group", T0)))

    async def titles(**fields: object) -> list[str]:
        hits = await engine.index.search_conversations(
            ConversationQuery(APP, parse_query("hiking"), 10, **fields))  # type: ignore[arg-type]
        return sorted(h.conversation_id for h in hits)

    assert await titles() == ["ch", "g1", "g2"]
    assert await titles(member_of=frozenset({"g1"})) == ["ch", "g1"]
    assert await titles(member_of=frozenset({"g1"}), channels=False) == ["g1"]
    assert await titles(member_of=frozenset({"g1"}), channels_only=True) == ["ch"]
    assert await titles(member_of=frozenset()) == ["ch"]
    await engine.apply(Write(5, ConversationDoc(APP, "g1", "Weekend climbing", "group", T0)))
    assert await titles() == ["ch", "g2"]


async def test_a_reindex_scan_never_overwrites_newer_documents_and_sweeps_the_rest(
        engine: Engine) -> None:
    await engine.apply(
        Write(1, message("c1", 1, "kept as it was")),
        Write(2, message("c1", 2, "gone from the store")),
        Write(9, message("c1", 3, "edited after the scan began")))
    scan = Scan(APP, 5)
    await engine.index.scan_write(scan, [
        message("c1", 1, "kept as it was"), message("c1", 3, "stale copy from the store"),
        message("c1", 4, "missing from the index")])
    await engine.index.sweep(scan)
    await engine.settle()
    assert await engine.find("gone") == []
    assert await engine.find("stale") == []
    assert await engine.find("edited") == [("c1", 3)]
    assert sorted(await engine.find("")) == [("c1", 1), ("c1", 3), ("c1", 4)]
    assert await engine.index.count(APP) == (3, 0)


async def test_identity_is_stable_for_one_index(engine: Engine) -> None:
    first = await engine.index.identity()
    await engine.index.migrate()
    assert await engine.index.identity() == first and first


async def test_a_replayed_conversation_deletion_removes_what_a_scan_wrote_back(
        engine: Engine) -> None:
    await engine.apply(Write(2, message("c1", 1, "doomed words")),
                       Write(9, Deletion(ConversationKey(APP, "c1"))))
    # A reindex scan read the conversation before it was deleted, and writes late.
    await engine.index.scan_write(Scan(APP, 5), [message("c1", 1, "doomed words")])
    await engine.settle()
    assert await engine.find("doomed") == [("c1", 1)]
    await engine.apply(Write(9, Deletion(ConversationKey(APP, "c1"))))  # the replay
    assert await engine.find("doomed") == []


async def test_a_new_elasticsearch_version_is_searched_once_promoted(
        search_engine: SearchServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    old = ElasticIndex.connect(search_engine.url, "", prefix)
    await old.migrate()
    await old.apply(APP, [Write(1, message("c1", 1, "written to version one"))])
    await old.refresh()
    new = ElasticIndex(old._es, prefix, version=2)  # same cluster, the next mapping
    await new.migrate()
    assert await new.identity() != await old.identity()  # a new consumer fills it
    await new.apply(APP, [Write(1, message("c1", 1, "written to version two"))])
    await new.refresh()
    query = MessageQuery(APP, parse_query("written"), Order.NEWEST, 10)

    async def texts() -> list[str]:
        return ["".join(text for text, _ in hit.snippet)
                for hit in await new.search_messages(query)]

    assert await texts() == ["written to version one"]  # still searched until promoted
    await new.promote()
    assert await texts() == ["written to version two"]
    await new.promote()  # again: nothing to do
    assert await texts() == ["written to version two"]
    await new.close()


async def test_elasticsearch_over_tls_trusts_the_configured_ca(
        search_engine: SearchServer, tmp_path: Path) -> None:
    """An https:// engine whose certificate comes from CAAS_TLS_CA_FILE's CA: the index
    works through it; without that CA, the certificate is refused (no fallback)."""
    files = self_signed(tmp_path / "pki")
    port = free_port()
    proxy = _es_proxy(port, search_engine.engine_url, (files.cert, files.key))
    try:
        url = f"https://127.0.0.1:{port}"
        trusted = ElasticIndex.connect(url, "", f"t{uuid.uuid4().hex[:10]}", files.ca)
        try:
            await trusted.migrate()
            await trusted.apply(APP, [Write(1, message("c1", 1, "over tls"))])
            assert await trusted.count(APP) == (1, 0)
        finally:
            await trusted.close()
        untrusting = ElasticIndex.connect(url, "", f"t{uuid.uuid4().hex[:10]}")
        try:
            with pytest.raises(Exception, match=r"(?i)certificate"):
                await untrusting.migrate()
        finally:
            await untrusting.close()
    finally:
        proxy.stop()
