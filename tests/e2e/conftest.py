"""The people of the end-to-end tests: three users of one app, one of another."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conftest import AppHandle
from tests.support.chat import Person, person
from tests.support.client import Client
from tests.support.servers import CaasServer
from tests.support.webhook_receiver import Receiver, running_receiver


@pytest.fixture
async def alice(client: Client, app: AppHandle) -> Person:
    return await person(client, app.app_id, app.api_key, "alice", "Alice A.")


@pytest.fixture
async def bob(client: Client, app: AppHandle) -> Person:
    return await person(client, app.app_id, app.api_key, "bob", "Bob B.")


@pytest.fixture
async def carol(client: Client, app: AppHandle) -> Person:
    return await person(client, app.app_id, app.api_key, "carol", "Carol C.")


@pytest.fixture
async def mallory(client: Client, other_app: AppHandle) -> Person:
    """A user of another app, with the same user id as nobody in particular."""
    return await person(client, other_app.app_id, other_app.api_key, "alice", "Mallory")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A local HTTP server that webhooks deliver to (tests/support/webhook_receiver.py)."""
    with running_receiver() as running:
        yield running


@pytest.fixture
async def http(server: CaasServer) -> AsyncIterator[httpx.AsyncClient]:
    """JSON, gRPC-Web and plain HTTP calls to the shared server, through Envoy."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        yield client
