"""List RPCs page through everything exactly once, in order."""

from __future__ import annotations

from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.auth.v1 import auth_service_pb2 as auth_pb

from tests.conftest import AppHandle, sign_in
from tests.support.client import Client


async def test_api_keys_page_by_page(client: Client, app: AppHandle) -> None:
    for index in range(4):
        await client.apps.CreateApiKey(apps_pb.CreateApiKeyRequest(
            parent=app.name, api_key=apps_res.ApiKey(display_name=f"k{index}")),
            metadata=app.auth)
    seen: list[apps_res.ApiKey] = []
    token = ""
    pages = 0
    while True:
        page = await client.apps.ListApiKeys(
            apps_pb.ListApiKeysRequest(parent=app.name, page_size=2, page_token=token),
            metadata=app.auth)
        pages += 1
        seen += page.api_keys
        token = page.next_page_token
        if not token:
            break
    # Each once, oldest first (keys made in the same millisecond are ordered by id).
    assert sorted(k.display_name for k in seen) == ["first key", "k0", "k1", "k2", "k3"]
    order = [(k.create_time.ToMilliseconds(), k.name) for k in seen]
    assert order == sorted(order)
    assert pages == 3


async def test_exact_page_ends_without_a_token(client: Client, app: AppHandle) -> None:
    for _ in range(2):
        await sign_in(client, app, "exact")
    page = await client.auth.ListSessions(
        auth_pb.ListSessionsRequest(parent=f"{app.name}/users/exact", page_size=2),
        metadata=app.auth)
    assert len(page.sessions) == 2 and page.next_page_token == ""


async def test_empty_listing(client: Client, app: AppHandle) -> None:
    page = await client.auth.ListSessions(
        auth_pb.ListSessionsRequest(parent=f"{app.name}/users/nobody"), metadata=app.auth)
    assert list(page.sessions) == [] and page.next_page_token == ""
