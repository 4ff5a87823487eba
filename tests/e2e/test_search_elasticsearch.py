"""Search on Elasticsearch (osmem-server behind tests/support/es_proxy.py), with the
MongoDB store: the production pairing, end to end, and an outage of the engine while
people keep sending."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from caas.search.v1 import search_service_pb2 as pb

from tests.conftest import TEST_CONFIG, AppHandle, create_app, expect_error
from tests.e2e.test_search import found, search, texts
from tests.support.chat import Person, person
from tests.support.client import Client
from tests.support.servers import CaasServer, ExternalServer, SearchServer, start_caas
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def es_server(search_engine: SearchServer, mongo: ExternalServer,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaasServer]:
    env = {"CAAS_STORE": "mongodb", "CAAS_MONGODB_URL": mongo.url,
           "CAAS_MONGODB_DATABASE": f"es{uuid.uuid4().hex[:10]}",
           "CAAS_SEARCH_ENGINE": "elasticsearch",
           "CAAS_SEARCH_ELASTICSEARCH_URL": search_engine.url,
           "CAAS_SEARCH_INDEX_PREFIX": f"e{uuid.uuid4().hex[:10]}"}
    caas = start_caas(Path(tmp_path_factory.mktemp("caas-es")), env=env, config=TEST_CONFIG)
    yield caas
    assert caas.process.stop() == 0


@pytest.fixture
async def es_client(es_server: CaasServer) -> AsyncIterator[Client]:
    caas = Client(es_server.address)
    yield caas
    await caas.close()


@pytest.fixture
async def es_app(es_client: Client, es_server: CaasServer) -> AppHandle:
    return await create_app(es_client, es_server.operator_token)


async def people(client: Client, app: AppHandle) -> tuple[Person, Person, Person]:
    alice = await person(client, app.app_id, app.api_key, "alice", "Alice Martin")
    bob = await person(client, app.app_id, app.api_key, "bob", "Bob")
    carol = await person(client, app.app_id, app.api_key, "carol", "Carol")
    return alice, bob, carol


async def test_messages_conversations_and_users_on_elasticsearch(
        es_client: Client, es_app: AppHandle) -> None:
    alice, bob, carol = await people(es_client, es_app)
    group = await alice.create(members=("bob",), title="Café planning")
    await alice.send(group.name, "Rendez-vous au Café de Flore")
    await alice.send(group.name, "東京で会いましょう")
    await found(es_client, bob.auth, bob.app_id, "cafe", ["Rendez-vous au Café de Flore"])
    # Indexed in a round of its own, maybe (rounds are 0.1 s apart under load).
    await found(es_client, bob.auth, bob.app_id, "東京", ["東京で会いましょう"])
    assert await texts(es_client, carol.auth, carol.app_id, "cafe") == []
    assert await texts(es_client, es_app.auth, es_app.app_id, "cafe") == [
        "Rendez-vous au Café de Flore"]
    async def titles(who: Person) -> list[str]:
        response = await es_client.search.SearchConversations(pb.SearchConversationsRequest(
            parent=es_app.name, query="cafe"), metadata=who.auth)
        return [hit.conversation.title for hit in response.hits]

    async def bob_sees_it() -> bool:
        return await titles(bob) == ["Café planning"]

    await eventually(bob_sees_it, within=15)
    assert await titles(carol) == []
    users = await es_client.search.SearchUsers(pb.SearchUsersRequest(
        parent=es_app.name, prefix="mart"), metadata=bob.auth)
    assert [hit.user.name for hit in users.hits] == [alice.name]


async def test_an_engine_outage_loses_nothing(es_client: Client, es_app: AppHandle,
                                              search_engine: SearchServer) -> None:
    alice, bob, _ = await people(es_client, es_app)
    group = await alice.create(members=("bob",))
    await alice.send(group.name, "puffin before the outage")
    await found(es_client, bob.auth, bob.app_id, "puffin", ["puffin before the outage"])
    search_engine.proxy.stop()  # Elasticsearch unreachable
    try:
        sent = [f"puffin during the outage {n}" for n in range(20)]
        for text in sent:
            response = await alice.send(group.name, text)
            assert response.created  # sending never waits for the index
        got = await expect_error(search(es_client, bob.auth, bob.app_id, "puffin"),
                                 grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE")
        assert got.retry_seconds is not None and got.retry_seconds > 0
    finally:
        search_engine.start_proxy()
    # The indexer retries with growing delays, at most 5 s apart (services/search/indexer.py).
    await found(es_client, bob.auth, bob.app_id, "puffin",
                [*sent[::-1], "puffin before the outage"], within=30,
                order=pb.SEARCH_ORDER_NEWEST, page_size=50)
