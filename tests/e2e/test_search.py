"""SearchService against a running server (both stores, the embedded index): what each
caller finds, and the visibility rules tried from every side.

Indexing follows the event log in the background. A test that expects something to be
absent first waits until a later message of the same app is found: the indexer takes
an app's events in order, so everything before that marker is indexed by then."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from typing import Any

import grpc
import httpx
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from caas.search.v1 import search_service_pb2 as pb
from caas.users.v1 import resources_pb2 as user_res
from caas.users.v1 import users_service_pb2 as user_pb
from google.protobuf import field_mask_pb2, timestamp_pb2

from tests.conftest import AppHandle, expect_error, sign_in
from tests.e2e.test_http import grpc_web_frame, grpc_web_frames
from tests.e2e.test_ops import GRPCURL
from tests.support.chat import CHANNEL, Person
from tests.support.client import Client, bearer
from tests.support.servers import BIN, CaasServer
from tests.support.waiting import eventually

Auth = tuple[tuple[str, str], ...]


async def search(client: Client, auth: Auth, app: str, query: str = "", **fields: Any
                 ) -> pb.SearchMessagesResponse:
    response: pb.SearchMessagesResponse = await client.search.SearchMessages(
        pb.SearchMessagesRequest(parent=f"apps/{app}", query=query, **fields), metadata=auth)
    return response


async def texts(client: Client, auth: Auth, app: str, query: str = "", **fields: Any
                ) -> list[str]:
    return [hit.message.text for hit in (await search(client, auth, app, query,
                                                      **fields)).hits]


async def found(client: Client, auth: Auth, app: str, query: str, expected: list[str],
                within: float = 15, **fields: Any) -> None:
    """Wait until the search answers `expected` (in order)."""
    async def check() -> bool:
        return await texts(client, auth, app, query, **fields) == expected

    try:
        await eventually(check, within=within, every=0.05)
    except TimeoutError:
        assert await texts(client, auth, app, query, **fields) == expected


async def indexed_up_to_here(person: Person) -> None:
    """Send a marker in a conversation of the person's own and wait until they find it:
    every earlier event of the app is indexed then."""
    marker = f"marker{uuid.uuid4().hex[:12]}"
    conversation = await person.create()
    await person.send(conversation.name, marker)
    await found(person.client, person.auth, person.app_id, marker, [marker])


async def test_members_find_messages_by_their_words(client: Client, alice: Person,
                                                    bob: Person) -> None:
    conversation = await alice.create(members=("bob",))
    await alice.send(conversation.name, "Rendez-vous au Café de Flore, https://example.com/menu")
    await alice.send(conversation.name, "東京タワーに行きましょう")
    await found(client, bob.auth, bob.app_id, "cafe flore",
                ["Rendez-vous au Café de Flore, https://example.com/menu"])
    [hit] = (await search(client, bob.auth, bob.app_id, "CAFÉ")).hits
    assert [p.text for p in hit.snippet.parts if p.match] == ["Café"]
    assert hit.message.name.startswith(conversation.name + "/messages/")
    assert await texts(client, bob.auth, bob.app_id, "example") != []
    # Indexed in a round of its own, maybe (rounds are 0.1 s apart under load).
    await found(client, bob.auth, bob.app_id, "東京", ["東京タワーに行きましょう"])


async def test_a_member_who_left_finds_nothing_of_it_and_a_late_joiner_nothing_before(
        client: Client, alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(members=("bob", "carol"))
    await alice.send(group.name, "zebra before")
    await found(client, carol.auth, carol.app_id, "zebra", ["zebra before"])
    await client.conversations.LeaveConversation(
        conv_pb.LeaveConversationRequest(name=group.name), metadata=carol.auth)
    await alice.send(group.name, "zebra after carol left")
    await found(client, bob.auth, bob.app_id, "zebra",
                ["zebra after carol left", "zebra before"], order=pb.SEARCH_ORDER_NEWEST)
    await indexed_up_to_here(carol)
    assert await texts(client, carol.auth, carol.app_id, "zebra") == []
    # Back in: what is sent from now on, not what was said while away or before.
    await client.conversations.AddMembers(conv_pb.AddMembersRequest(
        conversation=group.name, user_ids=["carol"]), metadata=alice.auth)
    await alice.send(group.name, "zebra welcome back")
    await found(client, carol.auth, carol.app_id, "zebra", ["zebra welcome back"])


async def test_a_never_member_finds_nothing(client: Client, alice: Person, bob: Person,
                                            carol: Person) -> None:
    group = await alice.create(members=("bob",))
    channel = await alice.create(kind=CHANNEL, title="Open channel")
    await alice.send(group.name, "quokka private")
    await alice.send(channel.name, "quokka in a channel carol never joined")
    await found(client, bob.auth, bob.app_id, "quokka", ["quokka private"])
    await indexed_up_to_here(carol)
    assert await texts(client, carol.auth, carol.app_id, "quokka") == []
    # Naming the conversation changes nothing: it is not one of hers.
    for conversation in (group, channel):
        await expect_error(search(client, carol.auth, carol.app_id, "quokka",
                                  conversations=[conversation.name]),
                           grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


async def test_another_app_finds_nothing(client: Client, app: AppHandle,
                                         other_app: AppHandle, alice: Person,
                                         mallory: Person) -> None:
    conversation = await alice.create()
    await alice.send(conversation.name, "narwhal secret")
    await found(client, app.auth, app.app_id, "narwhal", ["narwhal secret"])
    # Mallory is "alice" in the other app; her app's key and her token find nothing.
    assert await texts(client, other_app.auth, other_app.app_id, "narwhal") == []
    assert await texts(client, mallory.auth, mallory.app_id, "narwhal") == []
    for auth in (other_app.auth, mallory.auth):
        await expect_error(search(client, auth, app.app_id, "narwhal"),
                           grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
        await expect_error(client.search.SearchConversations(pb.SearchConversationsRequest(
            parent=app.name, query="narwhal"), metadata=auth),
            grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    await expect_error(search(client, other_app.auth, other_app.app_id, "narwhal",
                              conversations=[conversation.name]),
                       grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")


async def test_deleted_messages_disappear_and_edits_are_found_by_their_new_text(
        client: Client, alice: Person, bob: Person) -> None:
    conversation = await alice.create(members=("bob",))
    gone = (await alice.send(conversation.name, "walrus regrettable")).message
    edited = (await alice.send(conversation.name, "walrus first draft")).message
    await found(client, bob.auth, bob.app_id, "walrus",
                ["walrus first draft", "walrus regrettable"], order=pb.SEARCH_ORDER_NEWEST)
    await client.messages.DeleteMessage(msg_pb.DeleteMessageRequest(name=gone.name),
                                        metadata=alice.auth)
    await client.messages.UpdateMessage(msg_pb.UpdateMessageRequest(
        message=msg_res.Message(name=edited.name, text="walrus final wording"),
        update_mask=field_mask_pb2.FieldMask(paths=["text"])), metadata=alice.auth)
    # At once: the store is checked, so a lagging index never shows what changed.
    assert "walrus regrettable" not in await texts(client, bob.auth, bob.app_id, "walrus")
    assert await texts(client, bob.auth, bob.app_id, "draft") == []
    await found(client, bob.auth, bob.app_id, "walrus", ["walrus final wording"])
    assert await texts(client, bob.auth, bob.app_id, "regrettable") == []
    assert await texts(client, bob.auth, bob.app_id, "final") == ["walrus final wording"]


async def test_the_apps_backend_searches_every_conversation(
        client: Client, app: AppHandle, alice: Person, bob: Person, carol: Person) -> None:
    first = await alice.create(members=("bob",))
    second = await carol.create()
    await alice.send(first.name, "ocelot from alice")
    await bob.send(first.name, "ocelot from bob")
    await carol.send(second.name, "ocelot from carol")
    await found(client, app.auth, app.app_id, "ocelot",
                ["ocelot from carol", "ocelot from bob", "ocelot from alice"],
                order=pb.SEARCH_ORDER_NEWEST)
    assert await texts(client, app.auth, app.app_id, "ocelot", sender_ids=["bob"]) == [
        "ocelot from bob"]
    assert await texts(client, app.auth, app.app_id, "ocelot",
                       conversations=[second.name]) == ["ocelot from carol"]


async def test_filters_orders_and_pages(client: Client, alice: Person, bob: Person) -> None:
    conversation = await alice.create(members=("bob",))
    root = (await alice.send(conversation.name, "heron root")).message
    await bob.send(conversation.name, "heron reply", thread_root_sequence=root.sequence)
    await alice.send(conversation.name, "heron link", attachments=[msg_res.Attachment(
        kind=msg_res.Attachment.KIND_LINK, uri="https://example.com/heron")])
    await alice.send(conversation.name, "heron hello @bob", mention_ids=["bob"])
    newest = ["heron hello @bob", "heron link", "heron reply", "heron root"]
    await found(client, bob.auth, bob.app_id, "heron", newest, order=pb.SEARCH_ORDER_NEWEST)
    assert await texts(client, bob.auth, bob.app_id, "heron",
                       order=pb.SEARCH_ORDER_OLDEST) == newest[::-1]
    assert await texts(client, bob.auth, bob.app_id, "heron", in_thread=True) == [
        "heron reply"]
    assert await texts(client, bob.auth, bob.app_id, "heron", has_attachments=True,
                       attachment_kinds=[msg_res.Attachment.KIND_LINK]) == ["heron link"]
    assert await texts(client, bob.auth, bob.app_id, "", mentioned_user_id="bob") == [
        "heron hello @bob"]
    assert await texts(client, bob.auth, bob.app_id, "heron", sender_ids=["bob"]) == [
        "heron reply"]
    after = timestamp_pb2.Timestamp()
    after.FromDatetime(root.create_time.ToDatetime())
    assert "heron root" in await texts(client, bob.auth, bob.app_id, "heron",
                                       start_time=after)
    pages: list[str] = []
    token = ""
    for _ in range(3):
        page = await search(client, bob.auth, bob.app_id, "heron", page_size=3,
                            page_token=token, order=pb.SEARCH_ORDER_NEWEST)
        pages += [hit.message.text for hit in page.hits]
        token = page.next_page_token
        if not token:
            break
    assert pages == newest
    first = await search(client, bob.auth, bob.app_id, "heron", page_size=1)
    await expect_error(search(client, bob.auth, bob.app_id, "other words", page_size=1,
                              page_token=first.next_page_token),
                       grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")
    await expect_error(search(client, alice.auth, alice.app_id, "heron", page_size=1,
                              page_token=first.next_page_token),
                       grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")


async def test_bad_requests_are_invalid_argument_naming_the_field(client: Client,
                                                                  alice: Person) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"query": "x" * 257}, "query"),
        ({"query": "a*"}, "query"),
        ({"query": " ".join(f"w{n}" for n in range(17))}, "query"),
        ({"page_size": 51}, "page_size"),
        ({"conversations": ["not a name"]}, "conversations[0]"),
        ({"attachment_kinds": [msg_res.Attachment.KIND_UNSPECIFIED]}, "attachment_kinds[0]"),
        ({"start_time": timestamp_pb2.Timestamp(seconds=20),
          "end_time": timestamp_pb2.Timestamp(seconds=10)}, ""),
    ]
    for fields, field in cases:
        got = await expect_error(search(client, alice.auth, alice.app_id, **fields),
                                 grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
        if field:
            assert field in got.field_violations, (fields, got)
    await expect_error(search(client, alice.auth, alice.app_id, "ok", page_token="garbage"),
                       grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")


async def test_conversations_by_title(client: Client, app: AppHandle, alice: Person,
                                      bob: Person, carol: Person) -> None:
    await alice.create(members=("bob",), title="Pelican planning")
    await alice.create(kind=CHANNEL, title="Pelican fans")
    await alice.create(title="Pelican secrets")  # alice alone

    async def titles(person: Person | AppHandle, **fields: Any) -> list[str]:
        response = await client.search.SearchConversations(pb.SearchConversationsRequest(
            parent=f"apps/{app.app_id}", query="pelican", **fields), metadata=person.auth)
        return sorted(hit.conversation.title for hit in response.hits)

    async def all_three() -> bool:
        return await titles(app) == ["Pelican fans", "Pelican planning", "Pelican secrets"]

    await eventually(all_three, within=15)
    assert await titles(bob) == ["Pelican fans", "Pelican planning"]
    assert await titles(carol) == ["Pelican fans"]  # the channel, which she may join
    assert await titles(bob, channels_only=True) == ["Pelican fans"]
    response = await client.search.SearchConversations(pb.SearchConversationsRequest(
        parent=app.name, query="planning"), metadata=bob.auth)
    [hit] = response.hits
    assert hit.conversation.membership.user_id == "bob"
    assert [p.text for p in hit.snippet.parts if p.match] == ["planning"]


async def test_users_by_the_beginnings_of_their_words(client: Client, app: AppHandle,
                                                      alice: Person, bob: Person) -> None:
    for user_id, name in (("elodie", "Élodie Martin"), ("u1", "Marc Dupont"),
                          ("zoe.durand", "Zoé"), ("gone", "Martine Gone")):
        await client.users.UpdateUser(user_pb.UpdateUserRequest(
            user=user_res.User(name=f"{app.name}/users/{user_id}",
                                         display_name=name),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]), allow_missing=True),
            metadata=app.auth)
    await client.users.DeleteUser(user_pb.DeleteUserRequest(name=f"{app.name}/users/gone"),
                                  metadata=app.auth)

    async def ids(prefix: str, auth: Auth = alice.auth, **fields: Any) -> list[str]:
        response = await client.search.SearchUsers(pb.SearchUsersRequest(
            parent=app.name, prefix=prefix, **fields), metadata=auth)
        return [hit.user.name.rsplit("/", 1)[1] for hit in response.hits]

    assert await ids("mar") == ["u1", "elodie"]  # by the word that matched: marc, martin
    assert await ids("elo") == ["elodie"]
    assert await ids("ELODIE m") == ["elodie"]
    assert await ids("dur") == ["zoe.durand"]  # a part of the id
    assert await ids("zoe") == ["zoe.durand"]
    assert await ids("martine") == []  # deleted
    assert await ids("m", page_size=1) == ["u1"]
    # Renamed: found by the new name at once.
    await client.users.UpdateUser(user_pb.UpdateUserRequest(
        user=user_res.User(name=f"{app.name}/users/u1", display_name="Luc"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"])), metadata=app.auth)
    assert await ids("mar") == ["elodie"]
    assert await ids("luc", auth=app.auth) == ["u1"]
    # Among a conversation's members only; a non-member may not ask.
    conversation = await alice.create(members=("bob",))
    assert await ids("b", conversation=conversation.name) == ["bob"]
    assert await ids("elo", conversation=conversation.name) == []
    carol_token = (await sign_in(client, app, "carol")).credentials.access_token
    await expect_error(ids("b", auth=bearer(carol_token), conversation=conversation.name),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


async def test_json_and_grpc_web_through_envoy_and_grpcurl(server: CaasServer,
                                                           client: Client, alice: Person,
                                                           bob: Person) -> None:
    conversation = await alice.create(members=("bob",))
    await alice.send(conversation.name, "ibis over every surface")
    await found(client, bob.auth, bob.app_id, "ibis", ["ibis over every surface"])
    headers = {"authorization": f"Bearer {bob.token}"}
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        answer = await http.post(f"/v1/apps/{bob.app_id}/messages:search",
                                 json={"query": "ibis", "pageSize": 5}, headers=headers)
        assert answer.status_code == 200, answer.text
        [hit] = answer.json()["hits"]
        assert hit["message"]["text"] == "ibis over every surface"
        assert {"text": "ibis", "match": True} in hit["snippet"]["parts"]
        bad = await http.post(f"/v1/apps/{bob.app_id}/messages:search",
                              json={"query": "a*"}, headers=headers)
        assert bad.status_code == 400 and "query" in bad.text
        users = await http.post(f"/v1/apps/{bob.app_id}/users:search",
                                json={"prefix": "ali"}, headers=headers)
        assert [h["user"]["name"] for h in users.json()["hits"]] == [alice.name]
        request = pb.SearchMessagesRequest(parent=f"apps/{bob.app_id}", query="ibis")
        web = await http.post("/caas.search.v1.SearchService/SearchMessages",
                              content=grpc_web_frame(request.SerializeToString()),
                              headers={**headers, "content-type": "application/grpc-web+proto",
                                       "x-grpc-web": "1"})
        messages, trailers = grpc_web_frames(web.content)
        assert trailers["grpc-status"] == "0"
        assert [h.message.text for h in pb.SearchMessagesResponse.FromString(
            messages[0]).hits] == ["ibis over every surface"]
    for target in (server.address, f"127.0.0.1:{server.http_port}"):
        command = [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {bob.token}",
                   "-d", json.dumps({"parent": f"apps/{bob.app_id}", "query": "ibis"}),
                   target, "caas.search.v1.SearchService/SearchMessages"]
        done = await asyncio.to_thread(subprocess.run, command, capture_output=True,
                                       text=True, timeout=30, check=True)
        assert json.loads(done.stdout)["hits"][0]["message"]["text"] == "ibis over every surface"


async def test_admin_reindex_online_and_search_status(server: CaasServer, client: Client,
                                                      app: AppHandle, alice: Person) -> None:
    conversation = await alice.create(title="Kestrel watch")
    for n in range(3):
        await alice.send(conversation.name, f"kestrel sighting {n}")
    await found(client, alice.auth, alice.app_id, "kestrel",
                [f"kestrel sighting {n}" for n in (2, 1, 0)], order=pb.SEARCH_ORDER_NEWEST)

    async def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run, [str(BIN / "caas"), "admin", *args], capture_output=True,
            text=True, timeout=120, env={**os.environ, **server.env})

    done = await admin("reindex", app.app_id)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"app": app.name, "documents_written": 4,
                                       "messages_indexed": 3, "conversations_indexed": 1}
    assert f"reindexing app {app.app_id}" in done.stderr and "done" in done.stderr
    # The server kept answering, and still does.
    await alice.send(conversation.name, "kestrel after the reindex")
    await found(client, alice.auth, alice.app_id, "kestrel", [
        "kestrel after the reindex", *(f"kestrel sighting {n}" for n in (2, 1, 0))],
        order=pb.SEARCH_ORDER_NEWEST)
    status = await admin("search-status")
    assert status.returncode == 0, status.stderr
    answer = json.loads(status.stdout)
    assert answer["engine"] == "embedded" and answer["consumer"].startswith("search-")
    assert isinstance(answer["events_behind"], int)
    missing = await admin("reindex", "no-such-app")
    assert missing.returncode == 1 and "RESOURCE_NOT_FOUND" in missing.stderr
