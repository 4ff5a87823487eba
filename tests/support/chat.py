"""Chat test helpers: a signed-in person and the calls people make all day."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from caas.auth.v1 import auth_service_pb2 as auth_pb
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from caas.users.v1 import resources_pb2 as user_res
from caas.users.v1 import users_service_pb2 as user_pb
from google.protobuf import field_mask_pb2

from tests.support.client import Client, bearer

GROUP = conv_res.Conversation.KIND_GROUP
CHANNEL = conv_res.Conversation.KIND_CHANNEL
DIRECT = conv_res.Conversation.KIND_DIRECT


def inbox_order(conversations: Any) -> list[str]:
    """Names in the inbox's order: pinned first, then latest activity first; activity in
    the same millisecond falls back to the conversation id, descending."""
    return [c.name for c in sorted(
        conversations, reverse=True,
        key=lambda c: (c.membership.pinned, c.last_activity_time.ToMilliseconds(),
                       c.name.rsplit("/", 1)[1]))]


@dataclass
class Person:
    """A user of an app, signed in, calling through `client`."""

    client: Client
    app_id: str
    user_id: str
    token: str

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.token)

    @property
    def name(self) -> str:
        return f"apps/{self.app_id}/users/{self.user_id}"

    def conversation(self, conversation_id: str) -> str:
        return f"apps/{self.app_id}/conversations/{conversation_id}"

    async def create(self, kind: int = GROUP, members: tuple[str, ...] = (),
                     conversation_id: str = "", title: str = "",
                     metadata: dict[str, str] | None = None, conversation_type: str = "",
                     encrypted: bool = False) -> conv_res.Conversation:
        response = await self.client.conversations.CreateConversation(
            conv_pb.CreateConversationRequest(
                parent=f"apps/{self.app_id}", conversation_id=conversation_id,
                conversation=conv_res.Conversation(kind=kind, title=title,  # type: ignore[arg-type]
                                                   metadata=metadata or {},
                                                   type=conversation_type,
                                                   end_to_end_encrypted=encrypted),
                member_ids=list(members)), metadata=self.auth)
        return response.conversation

    async def send(self, conversation: str, text: str, request_id: str | None = None,
                   **fields: Any) -> msg_pb.CreateMessageResponse:
        response: msg_pb.CreateMessageResponse = await self.client.messages.CreateMessage(
            msg_pb.CreateMessageRequest(parent=conversation,
                                        message=msg_res.Message(text=text, **fields),
                                        request_id=request_id or uuid.uuid4().hex),
            metadata=self.auth)
        return response

    async def messages(self, conversation: str, **position: Any) -> msg_pb.ListMessagesResponse:
        response: msg_pb.ListMessagesResponse = await self.client.messages.ListMessages(
            msg_pb.ListMessagesRequest(parent=conversation, **position), metadata=self.auth)
        return response

    async def inbox(self, **fields: Any) -> conv_pb.ListConversationsResponse:
        response: conv_pb.ListConversationsResponse = (
            await self.client.conversations.ListConversations(
                conv_pb.ListConversationsRequest(parent=self.name, **fields),
                metadata=self.auth))
        return response

    async def unread(self) -> tuple[int, int]:
        response = await self.client.messages.GetUnreadCount(
            msg_pb.GetUnreadCountRequest(name=f"{self.name}/unreadCount"), metadata=self.auth)
        return response.unread_count.total, response.unread_count.conversations

    async def mark_read(self, conversation: str, sequence: int = 0) -> msg_pb.MarkReadResponse:
        response: msg_pb.MarkReadResponse = await self.client.messages.MarkRead(
            msg_pb.MarkReadRequest(conversation=conversation, sequence=sequence),
            metadata=self.auth)
        return response


async def person(client: Client, app_id: str, api_key: str, user_id: str,
                 display_name: str = "") -> Person:
    """Create (or update) the user with the app's key, then sign them in."""
    await client.users.UpdateUser(user_pb.UpdateUserRequest(
        user=user_res.User(name=f"apps/{app_id}/users/{user_id}",
                           display_name=display_name or user_id.title()),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]), allow_missing=True),
        metadata=bearer(api_key))
    session = await client.auth.CreateSession(
        auth_pb.CreateSessionRequest(parent=f"apps/{app_id}/users/{user_id}"),
        metadata=bearer(api_key))
    return Person(client, app_id, user_id, session.credentials.access_token)
