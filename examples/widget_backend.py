"""An app's backend endpoint for the CAAS chat widget: it tells the widget who the
signed-in visitor is, by handing it a CAAS session for them.

The widget (`<script src=".../widget/caas-widget.js" data-token-url="/caas/session">`)
POSTs to `data-token-url` with the page's cookies (`credentials: "include"`, so keep
the endpoint on the page's own site). This backend:

1. finds the visitor in its OWN session (here: a `demo_user` cookie, a stand-in for
   your login; never trust a user id sent by the browser);
2. signs them in to CAAS (AuthService.CreateSession with the API key; the first time,
   that creates their CAAS user);
3. makes sure their support conversation exists: a group with the visitor and the
   support agent, `support-{user}` (CreateConversation with the API key; ALREADY_EXISTS
   is fine), and answers
   `{"user", "accessToken", "refreshToken", "accessTokenExpiresAt", "conversation"}`.

The API key stays on this server. The widget renews the access token with the refresh
token by itself, and asks this endpoint again only when the session has ended.

Run it next to your site (`python examples/widget_backend.py`): CAAS_TARGET (host:port
of CAAS's gRPC port), CAAS_APP (`apps/{app}`), CAAS_API_KEY, CAAS_SUPPORT_AGENT (the
agent's user id) and PORT. tests/browser/test_widget.py serves the test host page with
it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import grpc
from aiohttp import web
from caas.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from caas.conversations.v1 import (
    conversations_service_pb2,
    conversations_service_pb2_grpc,
    resources_pb2,
)


@dataclass(frozen=True)
class WidgetBackend:
    channel: grpc.aio.Channel
    app: str  # apps/{app}
    api_key: str
    support_agent: str  # the user id who answers visitors

    @property
    def _auth(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),)

    async def session(self, request: web.Request) -> web.Response:
        user_id = request.cookies.get("demo_user", "")  # your own login goes here
        if not user_id:
            raise web.HTTPUnauthorized(text="sign in first\n")
        # Signing in creates the CAAS user the first time; then the conversation.
        auth = auth_service_pb2_grpc.AuthServiceStub(self.channel)
        created = await auth.CreateSession(auth_service_pb2.CreateSessionRequest(
            parent=f"{self.app}/users/{user_id}"), metadata=self._auth)
        conversation = await self._support_conversation(user_id)
        credentials = created.credentials
        return web.json_response({
            "user": f"{self.app}/users/{user_id}",
            "accessToken": credentials.access_token,
            "refreshToken": credentials.refresh_token,
            "accessTokenExpiresAt": credentials.access_token_expire_time.ToMilliseconds(),
            "conversation": conversation,
        }, headers={"Cache-Control": "no-store"})

    async def _support_conversation(self, user_id: str) -> str:
        conversations = conversations_service_pb2_grpc.ConversationsServiceStub(self.channel)
        conversation_id = f"support-{user_id}"
        try:
            await conversations.CreateConversation(
                conversations_service_pb2.CreateConversationRequest(
                    parent=self.app, conversation_id=conversation_id,
                    conversation=resources_pb2.Conversation(
                        kind=resources_pb2.Conversation.KIND_GROUP, title="Support"),
                    member_ids=[user_id, self.support_agent]),
                metadata=self._auth)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        return f"{self.app}/conversations/{conversation_id}"


def routes(backend: WidgetBackend) -> list[web.RouteDef]:
    return [web.post("/caas/session", backend.session)]


def main() -> None:
    async def start() -> web.Application:
        backend = WidgetBackend(grpc.aio.insecure_channel(os.environ["CAAS_TARGET"]),
                                os.environ["CAAS_APP"], os.environ["CAAS_API_KEY"],
                                os.environ.get("CAAS_SUPPORT_AGENT", "support"))
        app = web.Application()
        app.add_routes(routes(backend))
        return app

    web.run_app(start(), port=int(os.environ.get("PORT", "8090")))


if __name__ == "__main__":
    main()
