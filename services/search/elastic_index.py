"""The search index on Elasticsearch, through the official async client.

Shared indexes with routing, not one index per app: thousands of apps would mean
thousands of indexes and their shards, each with a fixed cost in the cluster's heap
and state, while most apps are small. Every document carries its `app_id`; every
request routes by it (all of an app's documents on one shard, a search asks that
shard only) and filters by it. A very large app can later get an index of its own
behind the same alias scheme.

Names: the aliases `{prefix}-messages` and `{prefix}-conversations` point at the
physical indexes `{prefix}-messages-v{N}` / `{prefix}-conversations-v{N}`. Reads and
writes use the aliases; a mapping change creates version N+1, fills it (`caas admin
reindex`), and swaps the alias in one atomic request, without downtime.

Idempotence by position (services/search/index.py) uses Elasticsearch's external
versions: a document's version is the log position that wrote it, and the cluster
refuses (409) a write whose version is not higher, which the adapter takes as "newer
already there". A deleted message is a tombstone document (`live: false`) rather than
a deletion, since deletions forget their version after `index.gc_deletes`.

Analysis (`chat_text`): dots and underscores become spaces (`example.com` and
`foo_bar` are two words each, found by either, as in the embedded index), then the
standard tokenizer (Unicode word boundaries, UAX #29: Han and Hiragana characters are
words of their own, so CJK text is found without spaces), `lowercase` and
`asciifolding` (`cafe` finds `Café`). Queries go through the same chain; a query's
`example.com` is the phrase `example com`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from services.core.clock import from_ms, to_ms
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
    Write,
)
from services.search.text import MATCH_END, MATCH_START, Term, clean, snippet_parts

log = logging.getLogger("caas.search")

MAPPING_VERSION = 1
RESULT_WINDOW = 10_000  # index.max_result_window: how deep relevance pages go
SNIPPET_CHARACTERS = 200

ANALYSIS: dict[str, Any] = {
    "char_filter": {
        "chat_parts": {"type": "pattern_replace", "pattern": "[._]", "replacement": " "},
    },
    "analyzer": {
        "chat_text": {"type": "custom", "char_filter": ["chat_parts"], "tokenizer": "standard",
                      "filter": ["lowercase", "asciifolding"]},
    },
}
TEXT = {"type": "text", "analyzer": "chat_text"}
MESSAGES: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "app_id": {"type": "keyword"}, "conversation_id": {"type": "keyword"},
        "sequence": {"type": "long"}, "key": {"type": "keyword"},
        "sender_id": {"type": "keyword"}, "text": TEXT,
        "create_ms": {"type": "long"}, "edit_ms": {"type": "long"},
        "thread": {"type": "boolean"}, "kinds": {"type": "keyword"},
        "has_attachments": {"type": "boolean"}, "mentions": {"type": "keyword"},
        "position": {"type": "long"}, "live": {"type": "boolean"},
    },
}
CONVERSATIONS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "app_id": {"type": "keyword"}, "conversation_id": {"type": "keyword"},
        "title": TEXT, "kind": {"type": "keyword"}, "create_ms": {"type": "long"},
        "position": {"type": "long"}, "live": {"type": "boolean"},
    },
}


def message_key(app_id: str, conversation_id: str, sequence: int) -> str:
    return f"{app_id}/{conversation_id}/{sequence}"


def conversation_key(app_id: str, conversation_id: str) -> str:
    return f"{app_id}/{conversation_id}"


def text_clauses(field: str, terms: Sequence[Term]) -> list[dict[str, Any]]:
    return [{"match_phrase_prefix" if term.prefix else "match_phrase":
             {field: {"query": term.text}}} for term in terms]


def terms_filter(field: str, values: Sequence[str] | frozenset[str]) -> dict[str, Any]:
    return {"terms": {field: sorted(values)}}


def search_after(cursor: tuple[str | int, ...] | None) -> list[Any] | None:
    """The sort values to resume after, from a cursor of a newest- or oldest-first
    search; ValueError or TypeError if it is no such cursor (a forged page token)."""
    if cursor is None:
        return None
    ms, key = cursor
    return [_typed(ms, int), _typed(key, str)]


def offset(cursor: tuple[str | int, ...] | None) -> int:
    """Where a page by relevance starts. Relevance pages go by offset, not by the last
    score: scores are rounded in answers, and resuming after a rounded score may find
    the same page again. The offset is bounded by the engine's result window."""
    if cursor is None:
        return 0
    (start,) = cursor
    if not isinstance(start, int) or not 0 < start < RESULT_WINDOW:
        raise ValueError("not an offset")
    return start


def _typed(value: object, kind: type) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"not a {kind.__name__}")
    return value


class ElasticIndex:
    def __init__(self, client: AsyncElasticsearch, prefix: str,
                 version: int = MAPPING_VERSION) -> None:
        self._es = client
        # Searches go to the aliases; writes to this version's physical indexes, which
        # the aliases point at once they hold everything (`promote`).
        self._messages = f"{prefix}-messages"
        self._conversations = f"{prefix}-conversations"
        self._written = {alias: f"{alias}-v{version}"
                         for alias in (self._messages, self._conversations)}

    @classmethod
    def connect(cls, url: str, api_key: str, prefix: str, ca_file: Path | None = None
                ) -> ElasticIndex:
        """The index at `url` (https: trusting `ca_file`, else the usual CAs)."""
        tls: dict[str, Any] = {"ca_certs": str(ca_file)} if ca_file else {}
        client = AsyncElasticsearch(url, api_key=api_key or None, request_timeout=10,
                                    retry_on_timeout=True, max_retries=2, **tls)
        return cls(client, prefix)

    async def migrate(self) -> None:
        """Create this version's indexes, and the aliases if there are none yet. An
        alias already pointing at an older version keeps pointing there (searches go
        on) while the indexer fills the new one, until `promote`."""
        for alias, mappings in ((self._messages, MESSAGES),
                                (self._conversations, CONVERSATIONS)):
            index = self._written[alias]
            if not await self._es.indices.exists(index=index):
                await self._es.indices.create(
                    index=index, settings={"analysis": ANALYSIS}, mappings=mappings)
            if not await self._es.indices.exists_alias(name=alias):
                await self._es.indices.update_aliases(
                    actions=[{"add": {"index": index, "alias": alias}}])

    async def promote(self) -> None:
        """Point the aliases at this version's indexes, in one atomic request, and drop
        the older versions they pointed at."""
        for alias, index in self._written.items():
            pointed = list(await self._es.indices.get_alias(name=alias))
            if pointed == [index]:
                continue
            await self._es.indices.update_aliases(actions=[
                *({"remove": {"index": old, "alias": alias}} for old in pointed),
                {"add": {"index": index, "alias": alias}}])
            for old in pointed:
                await self._es.indices.delete(index=old)
            log.info("search: index version promoted", extra={"alias": alias, "index": index})

    async def identity(self) -> str:
        """The physical messages index's name and creation uuid."""
        index = self._written[self._messages]
        answer = await self._es.indices.get(index=index)
        return f"{index}-{answer[index]['settings']['index']['uuid']}"

    async def close(self) -> None:
        await self._es.close()

    # Writes

    async def apply(self, app_id: str, writes: Sequence[Write]) -> None:
        """One bulk request for the batch (the cluster applies a bulk's operations on one
        document in order), cut before each conversation deletion, whose messages go
        by a delete-by-query."""
        operations: list[dict[str, Any]] = []
        for write in writes:
            change = write.change
            if isinstance(change, Deletion) and isinstance(change.key, ConversationKey):
                if operations:
                    await self._bulk(operations)
                    operations = []
                await self._delete_conversation(change.key, write.position)
            operations += self._operations(app_id, change, write.position)
        if operations:
            await self._bulk(operations)

    async def scan_write(self, scan: Scan, docs: Sequence[MessageDoc | ConversationDoc]
                         ) -> None:
        operations = [operation for doc in docs
                      for operation in self._operations(scan.app_id, doc, scan.position)]
        if operations:
            await self._bulk(operations)

    async def sweep(self, scan: Scan) -> int:
        gone = 0
        for index in self._written.values():
            answer = await self._es.delete_by_query(
                index=index, routing=scan.app_id, refresh=True, conflicts="proceed",
                query={"bool": {"filter": [{"term": {"app_id": scan.app_id}},
                                           {"range": {"position": {"lt": scan.position}}},
                                           {"term": {"live": True}}]}})
            gone += int(answer.get("deleted", 0))
            await self._es.delete_by_query(
                index=index, routing=scan.app_id, refresh=True, conflicts="proceed",
                query={"bool": {"filter": [{"term": {"app_id": scan.app_id}},
                                           {"range": {"position": {"lt": scan.position}}}]}})
        return gone

    def _operations(self, app_id: str, change: MessageDoc | ConversationDoc | Deletion,
                    position: int) -> list[dict[str, Any]]:
        """The bulk operations writing a change at `position` (a deletion: a tombstone)."""
        if isinstance(change, MessageDoc | ConversationDoc):
            index, key, source = self._document(change, position)
        elif isinstance(change.key, MessageKey):
            k = change.key
            index, key = self._messages, message_key(k.app_id, k.conversation_id, k.sequence)
            source = {"app_id": k.app_id, "conversation_id": k.conversation_id,
                      "sequence": k.sequence, "key": key, "position": position,
                      "live": False}
        else:
            k2 = change.key
            index, key = self._conversations, conversation_key(k2.app_id, k2.conversation_id)
            source = {"app_id": k2.app_id, "conversation_id": k2.conversation_id,
                      "position": position, "live": False}
        return [{"index": {"_index": self._written[index], "_id": key, "routing": app_id,
                           "version": position, "version_type": "external"}}, source]

    async def _delete_conversation(self, key: ConversationKey, position: int) -> None:
        await self._es.delete_by_query(
            index=self._written[self._messages], routing=key.app_id, conflicts="proceed",
            query={"bool": {"filter": [{"term": {"app_id": key.app_id}},
                                       {"term": {"conversation_id": key.conversation_id}},
                                       {"range": {"position": {"lt": position}}}]}})

    async def _bulk(self, operations: list[dict[str, Any]]) -> None:
        """Index `operations`; a refusal for an older version (409) is the document being
        newer already, anything else raises."""
        answer = await self._es.bulk(operations=operations)
        if not answer.get("errors"):
            return
        for item in answer["items"]:
            result = next(iter(item.values()))
            if result.get("status", 200) >= 300 and result.get("status") != 409:
                raise RuntimeError(f"search index refused a write: {result.get('error')}")

    def _document(self, doc: MessageDoc | ConversationDoc, position: int
                  ) -> tuple[str, str, dict[str, Any]]:
        if isinstance(doc, MessageDoc):
            key = message_key(doc.app_id, doc.conversation_id, doc.sequence)
            return self._messages, key, {
                "app_id": doc.app_id, "conversation_id": doc.conversation_id,
                "sequence": doc.sequence, "key": key, "sender_id": doc.sender_id,
                "text": clean(doc.text), "create_ms": to_ms(doc.create_time),
                "edit_ms": None if doc.edit_time is None else to_ms(doc.edit_time),
                "thread": bool(doc.thread_root), "kinds": sorted(doc.attachment_kinds),
                "has_attachments": bool(doc.attachment_kinds),
                "mentions": sorted(doc.mention_ids), "position": position, "live": True}
        return self._conversations, conversation_key(doc.app_id, doc.conversation_id), {
            "app_id": doc.app_id, "conversation_id": doc.conversation_id,
            "title": clean(doc.title), "kind": doc.kind,
            "create_ms": to_ms(doc.create_time), "position": position, "live": True}

    # Searches

    async def search_messages(self, query: MessageQuery) -> list[Hit]:
        filters: list[dict[str, Any]] = [{"term": {"app_id": query.app_id}},
                                         {"term": {"live": True}}]
        if query.conversations:
            filters.append(terms_filter("conversation_id", query.conversations))
        if query.windows is not None and not query.windows:
            filters.append({"match_none": {}})  # a member of nothing finds nothing
        elif query.windows is not None:
            filters.append({"bool": {"minimum_should_match": 1, "should": [
                {"bool": {"filter": [{"term": {"conversation_id": conversation_id}},
                                     {"range": {"create_ms": {"gte": to_ms(since)}}}]}}
                for conversation_id, since in sorted(query.windows.items())]}})
        if query.sender_ids:
            filters.append(terms_filter("sender_id", query.sender_ids))
        if query.start_time is not None or query.end_time is not None:
            bounds: dict[str, int] = {}
            if query.start_time is not None:
                bounds["gte"] = to_ms(query.start_time)
            if query.end_time is not None:
                bounds["lt"] = to_ms(query.end_time)
            filters.append({"range": {"create_ms": bounds}})
        if query.has_attachments is not None:
            filters.append({"term": {"has_attachments": query.has_attachments}})
        if query.attachment_kinds:
            filters.append(terms_filter("kinds", query.attachment_kinds))
        if query.in_thread is not None:
            filters.append({"term": {"thread": query.in_thread}})
        if query.mentioned_user_id:
            filters.append({"term": {"mentions": query.mentioned_user_id}})
        newest = query.order is not Order.OLDEST
        sort: list[Any] = [{"create_ms": "desc" if newest else "asc"},
                           {"key": "desc" if newest else "asc"}]
        start, after = 0, None
        if query.order is Order.RELEVANCE:
            sort.insert(0, {"_score": "desc"})
            start = offset(query.after)
        else:
            after = search_after(query.after)
        size = max(0, min(query.limit, RESULT_WINDOW - start))
        answer = await self._search(
            index=self._messages, routing=query.app_id, size=size, sort=sort,
            from_=start, search_after=after, track_total_hits=False,
            query={"bool": {"must": text_clauses("text", query.terms), "filter": filters}},
            source_includes=["conversation_id", "sequence", "edit_ms", "text"],
            highlight=self._highlight("text"))
        hits = []
        for number, hit in enumerate(answer["hits"]["hits"], start + 1):
            source = hit["_source"]
            edit_ms = source.get("edit_ms")
            cursor = (number,) if query.order is Order.RELEVANCE else tuple(hit["sort"])
            hits.append(Hit(source["conversation_id"], int(source["sequence"]),
                            self._snippet(hit, "text"), cursor,
                            None if edit_ms is None else from_ms(int(edit_ms))))
        return hits

    async def search_conversations(self, query: ConversationQuery) -> list[Hit]:
        filters: list[dict[str, Any]] = [{"term": {"app_id": query.app_id}},
                                         {"term": {"live": True}}]
        if query.channels_only:
            filters.append({"term": {"kind": "channel"}})
        if query.member_of is not None:
            visible: list[dict[str, Any]] = [terms_filter("conversation_id", query.member_of)]
            if query.channels:
                visible.append({"term": {"kind": "channel"}})
            filters.append({"bool": {"should": visible, "minimum_should_match": 1}})
        start = offset(query.after)
        answer = await self._search(
            index=self._conversations, routing=query.app_id,
            size=max(0, min(query.limit, RESULT_WINDOW - start)), from_=start,
            sort=[{"_score": "desc"}, {"create_ms": "desc"}, {"conversation_id": "desc"}],
            track_total_hits=False,
            query={"bool": {"must": text_clauses("title", query.terms), "filter": filters}},
            source_includes=["conversation_id", "title"], highlight=self._highlight("title"))
        return [Hit(hit["_source"]["conversation_id"], 0, self._snippet(hit, "title"),
                    (number,))
                for number, hit in enumerate(answer["hits"]["hits"], start + 1)]

    async def _search(self, **request: Any) -> Any:
        """A search; no hits while the index does not exist yet (the indexer creates it
        when the engine first answers)."""
        try:
            return await self._es.search(**request)
        except NotFoundError:
            return {"hits": {"hits": []}}

    async def compact(self) -> None:
        """Nothing: Elasticsearch drops deleted documents at its segment merges."""

    async def count(self, app_id: str) -> tuple[int, int]:
        counts = []
        for index in (self._messages, self._conversations):
            try:
                answer = await self._es.count(
                    index=index, routing=app_id,
                    query={"bool": {"filter": [{"term": {"app_id": app_id}},
                                               {"term": {"live": True}}]}})
                counts.append(int(answer["count"]))
            except NotFoundError:
                counts.append(0)
        return counts[0], counts[1]

    async def refresh(self) -> None:
        """Make every write so far searchable (tests and the reindex command)."""
        await self._es.indices.refresh(index=[self._messages, self._conversations,
                                              *self._written.values()])

    @staticmethod
    def _highlight(field: str) -> dict[str, Any]:
        return {"pre_tags": [MATCH_START], "post_tags": [MATCH_END],
                "fields": {field: {"fragment_size": SNIPPET_CHARACTERS,
                                   "number_of_fragments": 1,
                                   "no_match_size": SNIPPET_CHARACTERS}}}

    @staticmethod
    def _snippet(hit: dict[str, Any], field: str) -> tuple[tuple[str, bool], ...]:
        whole = hit["_source"].get(field) or ""
        fragments = hit.get("highlight", {}).get(field) or [whole[:SNIPPET_CHARACTERS]]
        fragment = fragments[0]
        plain = fragment.replace(MATCH_START, "").replace(MATCH_END, "")
        start = whole.find(plain)
        return tuple(snippet_parts(fragment, cut_start=start > 0,
                                   cut_end=start < 0 or start + len(plain) < len(whole)))
