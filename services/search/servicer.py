"""caas.search.v1.SearchService: protobuf ↔ domain, nothing else."""

from __future__ import annotations

from caas.search.v1 import resources_pb2 as res
from caas.search.v1 import search_service_pb2 as pb

from services.conversations.servicer import conversation_proto, parse_conversation
from services.core.errors import invalid_field
from services.core.names import parse_app
from services.core.protoconv import timestamp_or_none
from services.gateway.gateway import Call
from services.media.delivery import MediaUrls
from services.messages.servicer import message_proto
from services.search.actions import MessageSearch, SearchActions
from services.search.index import Order
from services.search.indexer import ATTACHMENT_KINDS
from services.users.servicer import user_proto

ORDERS = {pb.SEARCH_ORDER_RELEVANCE: Order.RELEVANCE, pb.SEARCH_ORDER_NEWEST: Order.NEWEST,
          pb.SEARCH_ORDER_OLDEST: Order.OLDEST}


def snippet_proto(parts: tuple[tuple[str, bool], ...]) -> res.Snippet:
    return res.Snippet(parts=[res.Snippet.Part(text=text, match=match)
                              for text, match in parts])


def conversation_ids(app_id: str, names: list[str], field: str) -> frozenset[str]:
    ids = set()
    for name in names:
        owner, conversation_id = parse_conversation(name, field)
        if owner != app_id:
            raise invalid_field(field, f"{name} is not a conversation of apps/{app_id}")
        ids.add(conversation_id)
    return frozenset(ids)


class SearchServicer:
    def __init__(self, actions: SearchActions, urls: MediaUrls) -> None:
        self._actions = actions
        self._urls = urls

    async def SearchMessages(self, request: pb.SearchMessagesRequest, call: Call
                             ) -> pb.SearchMessagesResponse:
        app_id = parse_app(request.parent, "parent")
        found = await self._actions.search_messages(call.principal, app_id, MessageSearch(
            query=request.query,
            conversations=conversation_ids(app_id, list(request.conversations),
                                           "conversations"),
            sender_ids=frozenset(request.sender_ids),
            start_time=timestamp_or_none(request, "start_time"),
            end_time=timestamp_or_none(request, "end_time"),
            has_attachments=(request.has_attachments
                             if request.HasField("has_attachments") else None),
            attachment_kinds=frozenset(ATTACHMENT_KINDS[k] for k in request.attachment_kinds),
            in_thread=request.in_thread if request.HasField("in_thread") else None,
            mentioned_user_id=request.mentioned_user_id,
            order=ORDERS.get(request.order),
            page_size=request.page_size, page_token=request.page_token))
        return pb.SearchMessagesResponse(
            hits=[res.MessageHit(message=message_proto(shown, self._urls),
                                 snippet=snippet_proto(snippet))
                  for shown, snippet in found.hits],
            next_page_token=found.next_page_token)

    async def SearchConversations(self, request: pb.SearchConversationsRequest, call: Call
                                  ) -> pb.SearchConversationsResponse:
        found = await self._actions.search_conversations(
            call.principal, parse_app(request.parent, "parent"), request.query,
            request.channels_only, request.page_size, request.page_token)
        return pb.SearchConversationsResponse(
            hits=[res.ConversationHit(conversation=conversation_proto(shown),
                                      snippet=snippet_proto(snippet))
                  for shown, snippet in found.hits],
            next_page_token=found.next_page_token)

    async def SearchUsers(self, request: pb.SearchUsersRequest, call: Call
                          ) -> pb.SearchUsersResponse:
        app_id = parse_app(request.parent, "parent")
        conversation_id = ""
        if request.conversation:
            [conversation_id] = conversation_ids(app_id, [request.conversation],
                                                 "conversation")
        users = await self._actions.search_users(call.principal, app_id, request.prefix,
                                                 conversation_id, request.page_size)
        return pb.SearchUsersResponse(hits=[res.UserHit(user=user_proto(u)) for u in users])
