"""Searching: who may find what, and turning index hits into what callers see.

Visibility (the rules tests try to break, tests/e2e/test_search.py):
- Nobody finds anything of another app: every query names the caller's app.
- A user finds the messages of the conversations they belong to now, sent since they
  joined (the membership's join time: a user who left finds nothing of that
  conversation any more, and one who joins later does not find what was said before
  they came). The app's backend finds every message of the app.
- A user finds the conversations they belong to, and the app's channels.
- What the index holds is checked against the store before it is shown: a message
  deleted, or edited since the index copied it, is left out (its new text is found
  once the index has it), so a lagging index never shows what is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from services.conversations.access import Access, ShownConversation, conversation_not_found
from services.conversations.actions import ConversationsActions
from services.conversations.models import Kind
from services.conversations.store import ConversationStore
from services.core.errors import DomainError, InvalidArgument, Unavailable
from services.core.pagination import PageRequest, make_page, page_request
from services.core.principal import Principal, User, require_app
from services.messages.actions import MessagesActions, Shown, unsupported
from services.messages.store import MessageStore
from services.search.index import ConversationQuery, Hit, MessageQuery, Order, SearchIndex
from services.search.text import parse_query
from services.users.models import User as UserRecord
from services.users.store import UserStore
from services.users.words import query_words

log = logging.getLogger("caas.search")

DEFAULT_HITS = 20
DEFAULT_USERS = 10
RETRY_AFTER = timedelta(seconds=5)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MessageSearch:
    """A SearchMessages request, as checked by the contract (ids, not names)."""

    query: str
    conversations: frozenset[str] = frozenset()
    sender_ids: frozenset[str] = frozenset()
    start_time: datetime | None = None
    end_time: datetime | None = None
    has_attachments: bool | None = None
    attachment_kinds: frozenset[str] = frozenset()
    in_thread: bool | None = None
    mentioned_user_id: str = ""
    order: Order | None = None  # None: relevance with a query, else newest first
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True, slots=True)
class MessageHits:
    hits: list[tuple[Shown, tuple[tuple[str, bool], ...]]]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class ConversationHits:
    hits: list[tuple[ShownConversation, tuple[tuple[str, bool], ...]]]
    next_page_token: str


class SearchActions:
    def __init__(self, index: SearchIndex, conversations: ConversationsActions,
                 conversation_store: ConversationStore, messages: MessagesActions,
                 message_store: MessageStore, users: UserStore) -> None:
        self._index = index
        self._access = conversations
        self._conversations = conversation_store
        self._messages = messages
        self._message_store = message_store
        self._users = users

    async def search_messages(self, principal: Principal, app_id: str, search: MessageSearch
                              ) -> MessageHits:
        require_app(principal, app_id)
        terms = parse_query(search.query)
        order = search.order or Order.RELEVANCE
        if not terms and order is Order.RELEVANCE:
            order = Order.NEWEST
        scope = [app_id, "messages", principal_key(principal), search.query,
                 ",".join(sorted(search.conversations)), ",".join(sorted(search.sender_ids)),
                 str(search.start_time), str(search.end_time), str(search.has_attachments),
                 ",".join(sorted(search.attachment_kinds)), str(search.in_thread),
                 search.mentioned_user_id, order.value]
        request = page_request(search.page_size or DEFAULT_HITS, search.page_token, scope)
        windows = None
        if isinstance(principal, User):
            windows = await self._conversations.join_times(app_id, principal.user_id)
            for conversation_id in sorted(search.conversations - set(windows)):
                raise conversation_not_found(app_id, conversation_id)
            if search.conversations:
                windows = {c: windows[c] for c in search.conversations}
        for conversation_id in sorted(search.conversations):
            found = await self._conversations.get_conversation(app_id, conversation_id)
            if found is not None and found.encrypted:
                raise unsupported("search", "its messages are not searchable on the server"
                                  " (search them on the device)")
        query = MessageQuery(
            app_id, terms, order, request.size + 1, windows, search.conversations,
            search.sender_ids, search.start_time, search.end_time, search.has_attachments,
            search.attachment_kinds, search.in_thread, search.mentioned_user_id,
            request.after)
        page = make_page(await _engine(self._index.search_messages(query), request),
                         request, scope, lambda hit: hit.cursor)
        shown = await self._show_messages(principal, app_id, page.items)
        return MessageHits([(s, hit.snippet if terms else ()) for hit, s in shown],
                           page.next_page_token)

    async def _show_messages(self, principal: Principal, app_id: str, hits: Sequence[Hit]
                             ) -> list[tuple[Hit, Shown]]:
        """The hits whose message the store still has as the index copied it, shown."""
        by_conversation: dict[str, list[Hit]] = {}
        for hit in hits:
            by_conversation.setdefault(hit.conversation_id, []).append(hit)
        shown: dict[tuple[str, int], Shown] = {}
        for conversation_id, found in by_conversation.items():
            stored = await self._message_store.get_many(
                app_id, conversation_id, [h.sequence for h in found])
            current = [m for h in found
                       if (m := stored.get(h.sequence)) is not None and not m.deleted
                       and not m.shadowed and m.edit_time == h.edit_time]
            for s in await self._messages.show(principal, current):
                shown[(conversation_id, s.message.sequence)] = s
        return [(hit, shown[key]) for hit in hits
                if (key := (hit.conversation_id, hit.sequence)) in shown]

    async def search_conversations(self, principal: Principal, app_id: str, query_text: str,
                                   channels_only: bool, page_size: int, page_token: str
                                   ) -> ConversationHits:
        require_app(principal, app_id)
        terms = parse_query(query_text)
        scope = [app_id, "conversations", principal_key(principal), query_text,
                 str(channels_only)]
        request = page_request(page_size or DEFAULT_HITS, page_token, scope)
        member_of = None
        user = principal.user_id if isinstance(principal, User) else None
        if user is not None:
            member_of = frozenset(await self._conversations.join_times(app_id, user))
        if not terms:
            return ConversationHits([], "")
        page = make_page(await _engine(self._index.search_conversations(ConversationQuery(
            app_id, terms, request.size + 1, member_of, True, channels_only, request.after)),
            request), request, scope, lambda hit: hit.cursor)
        memberships = ({} if user is None else await self._conversations.get_memberships(
            app_id, user, [h.conversation_id for h in page.items]))
        found = []
        for hit in page.items:
            conversation = await self._conversations.get_conversation(app_id,
                                                                      hit.conversation_id)
            if conversation is None:  # deleted; the index has yet to hear of it
                continue
            member = memberships.get(hit.conversation_id)
            if user is not None and member is None and conversation.kind is not Kind.CHANNEL:
                continue  # left since the search began
            found.append((Access(conversation, member, backend=user is None).shown(),
                          hit.snippet))
        return ConversationHits(found, page.next_page_token)

    async def search_users(self, principal: Principal, app_id: str, prefix: str,
                           conversation_id: str, page_size: int) -> list[UserRecord]:
        """Users of the app by the beginnings of their words (services/users/words.py);
        with a conversation, only its members, which a user must be one of."""
        require_app(principal, app_id)
        among = None
        if conversation_id:
            access = await self._access.access(principal, app_id, conversation_id)
            access.require_member()
            among = await self._conversations.member_ids(app_id, conversation_id)
        words = query_words(prefix)
        if not words:
            return []
        return await self._users.search_users(app_id, words, page_size or DEFAULT_USERS,
                                              among)


def principal_key(principal: Principal) -> str:
    """Who asked, for binding page tokens: a user's page is not another's."""
    return principal.user_id if isinstance(principal, User) else "backend"


async def _engine(search: Awaitable[T], request: PageRequest) -> T:
    """The index's answer; UNAVAILABLE (retry later) when the engine fails, and
    PAGE_TOKEN_INVALID when it cannot resume from the token's position (tokens are not
    signed: a forged one reaches the engine, which checks its shape)."""
    try:
        return await search
    except DomainError:
        raise
    except (ValueError, TypeError, IndexError) as error:
        if request.after is None:
            raise
        raise InvalidArgument("PAGE_TOKEN_INVALID", "page_token is damaged") from error
    except Exception as error:
        log.warning("search engine failed", extra={"error": repr(error)})
        raise Unavailable("UNAVAILABLE", "search is unavailable for a moment; retry later",
                          retry_after=RETRY_AFTER) from None

