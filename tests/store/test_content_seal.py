"""Message content sealing on both engines (services/messages/sealing.py): a message
is stored sealed and read in clear, its metadata filters compare blind tokens (and the
values of messages written before sealing), and content whose key is erased, or whose
ciphertext was changed, reads as empty instead of failing the whole read."""

from __future__ import annotations

from datetime import UTC, datetime

from caas.events.v1 import events_pb2

from services.conversations.models import Conversation, Kind, Member, Role
from services.core.filtering import And, Comparison, Not, Op, Or
from services.keys.keyring import TEXT_PREFIX
from services.keys.models import user_owner
from services.messages.models import Attachment, Draft, MessageChanges
from services.messages.sealing import ContentSeal
from services.runtime import Stores

NOW = datetime(2026, 12, 4, tzinfo=UTC)
APP = "sealapp"


async def conversation(stores: Stores, conversation_id: str) -> None:
    await stores.conversations.create_conversation(
        Conversation(APP, conversation_id, Kind.GROUP, "", "", {}, False, "alice", 1, 0,
                     None, NOW, NOW, NOW),
        [Member(APP, conversation_id, "alice", Role.OWNER, NOW)], None)


async def test_a_message_is_sealed_in_the_store_and_read_in_clear(stores: Stores) -> None:
    await conversation(stores, "c1")
    draft = Draft("alice", "hello " + "y" * 300, (Attachment("link", "https://x.test/a",
                                                             "a title"),),
                  metadata={"k": "v"})
    sent, created = await stores.messages.append(APP, "c1", draft, "r1", NOW)
    assert created and sent.text == draft.text and sent.metadata == {"k": "v"}
    got = await stores.messages.get(APP, "c1", 1)
    assert got is not None
    assert (got.text, got.attachments[0].title, got.attachments[0].uri, got.metadata) == (
        draft.text, "a title", "https://x.test/a", {"k": "v"})
    again, created = await stores.messages.append(APP, "c1", draft, "r1", NOW)
    assert not created and again.text == draft.text  # the retry reads the stored one
    shown = await stores.conversations.get_conversation(APP, "c1")
    assert shown is not None and shown.last_message is not None
    assert shown.last_message.text == draft.text[:200]
    # Underneath, sealed.
    raw = await stores.messages._inner.get(APP, "c1", 1)  # type: ignore[attr-defined]
    assert raw.text.startswith(TEXT_PREFIX) and raw.metadata["k"].startswith(TEXT_PREFIX)
    edited = await stores.messages.edit(APP, "c1", 1, MessageChanges(text="changed"), NOW)
    assert edited is not None and edited.text == "changed"
    assert [r.text for r in await stores.messages.revisions(APP, "c1", 1)] == [
        draft.text, "changed"]


async def test_metadata_filters_match_sealed_and_older_clear_values(stores: Stores) -> None:
    await conversation(stores, "c2")
    inner = stores.messages._inner  # type: ignore[attr-defined]
    await inner.append(APP, "c2", Draft("alice", "clear", metadata={"k": "v"}), "r1", NOW)
    await stores.messages.append(APP, "c2", Draft("alice", "sealed", metadata={"k": "v"}),
                                 "r2", NOW)
    await stores.messages.append(APP, "c2", Draft("alice", "other", metadata={"k": "w"}),
                                 "r3", NOW)

    async def texts(where: object) -> list[str]:
        page = await stores.messages.list_page(APP, "c2", 0, "after", 0, 10,
                                               where=where)  # type: ignore[arg-type]
        return [m.text for m in page.messages]

    equal = Comparison("metadata", Op.EQ, "v", key="k")
    assert await texts(equal) == ["clear", "sealed"]
    assert await texts(Comparison("metadata", Op.NE, "v", key="k")) == ["other"]
    assert await texts(Not(equal)) == ["other"]
    assert await texts(Or((equal, Comparison("metadata", Op.EQ, "w", key="k")))) == [
        "clear", "sealed", "other"]
    assert await texts(And((Comparison("metadata", Op.HAS, "k"), equal))) == [
        "clear", "sealed"]


async def test_content_that_cannot_open_reads_empty(stores: Stores) -> None:
    seal = ContentSeal(stores.keyring, enabled=True)
    await conversation(stores, "c3")
    sealed = await seal.seal_draft(APP, Draft("bob", "bob's words", metadata={"k": "v"}))
    assert sealed.text.startswith(TEXT_PREFIX)
    changed = sealed.text[:-2] + ("A" if sealed.text[-2] != "A" else "B") + sealed.text[-1]
    assert await seal.open_text(APP, "bob", changed) == ""  # changed: logged, not raised
    assert await seal.open_text(APP, "alice", sealed.text) == ""  # someone else's key
    assert await seal.open_text(APP, "bob", sealed.text) == "bob's words"
    await stores.keyring.erase(APP, user_owner("bob"))
    assert await ContentSeal(stores.keyring, True).open_text(APP, "bob", sealed.text) == ""


async def test_event_payloads_open_in_place(stores: Stores) -> None:
    seal = ContentSeal(stores.keyring, enabled=True)
    sealed = await seal.seal_draft(APP, Draft("carol", "in the log", metadata={"k": "v"}))
    event = events_pb2.Event(name=f"apps/{APP}/events/1", type="message.created")
    event.message_created.sender_id = "carol"
    event.message_created.text = sealed.text
    event.message_created.metadata.update(sealed.metadata)
    opened = events_pb2.Event.FromString(await seal.open_payload(event.SerializeToString()))
    assert (opened.message_created.text, dict(opened.message_created.metadata)) == (
        "in the log", {"k": "v"})
    plain = events_pb2.Event(name=f"apps/{APP}/events/2", type="read.updated")
    payload = plain.SerializeToString()
    assert await seal.open_payload(payload) is payload  # nothing sealed: not parsed


async def test_off_writes_in_clear_and_still_opens_what_was_sealed(stores: Stores) -> None:
    on, off = ContentSeal(stores.keyring, True), ContentSeal(stores.keyring, False)
    draft = Draft("dave", "words", metadata={"k": "v"})
    assert await off.seal_draft(APP, draft) is draft
    sealed = await on.seal_draft(APP, draft)
    assert await off.open_text(APP, "dave", sealed.text) == "words"
