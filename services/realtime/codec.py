"""Domain events as the stream carries them: caas.events.v1.Event, encoded once."""

from __future__ import annotations

from caas.calls.v1 import resources_pb2 as calls_res
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.events.v1 import events_pb2 as pb
from caas.messages.v1 import resources_pb2 as msg_res

from services.calls.models import Call
from services.calls.protos import call_proto
from services.conversations.access import ShownConversation, conversation_name, public_member
from services.conversations.models import Conversation, Member
from services.conversations.servicer import conversation_proto, member_proto
from services.core.events import DomainEvent
from services.core.protoconv import timestamp
from services.events.log import Encoder
from services.media.delivery import MediaUrls
from services.media.models import Media
from services.media.servicer import media_proto
from services.messages.actions import Shown
from services.messages.models import Message
from services.messages.servicer import message_proto
from services.moderation.models import Flag, Restriction
from services.moderation.servicer import flag_proto, restriction_proto


def _message(payload: object, urls: MediaUrls) -> msg_res.Message:
    assert isinstance(payload, Message)
    return message_proto(Shown(payload, frozenset(), False), urls)


def _member(event: DomainEvent) -> conv_res.Member:
    member = event.payload
    assert isinstance(member, Member)
    # A private event reaches only the member themself; every member sees the others.
    return member_proto(member if event.private else public_member(member))


def _read_state(event: DomainEvent, read: bool) -> pb.ReadState:
    member = event.payload
    assert isinstance(member, Member)
    return pb.ReadState(user_id=member.user_id,
                        sequence=member.read_sequence if read else member.delivered_sequence,
                        time=timestamp(event.time))


def event_proto(event: DomainEvent, position: int, urls: MediaUrls) -> pb.Event:
    """The event as streams and webhooks carry it; media URLs in it are signed now,
    by `urls`."""
    proto = pb.Event(name=f"apps/{event.app_id}/events/{position}", type=event.type,
                     create_time=timestamp(event.time),
                     conversation=(conversation_name(event.app_id, event.conversation_id)
                                   if event.conversation_id else ""),
                     user_id=event.user_id)
    field = event.type.replace(".", "_")
    match event.type:
        case "message.created" | "message.updated" | "message.deleted":
            getattr(proto, field).CopyFrom(_message(event.payload, urls))
        case "reaction.added" | "reaction.removed":
            getattr(proto, field).CopyFrom(pb.ReactionChange(
                message=_message(event.payload, urls), emoji=event.data["emoji"]))
        case "conversation.created" | "conversation.updated":
            assert isinstance(event.payload, Conversation)
            # Streams carry a conversation's events to its members only.
            getattr(proto, field).CopyFrom(conversation_proto(
                ShownConversation(event.payload, None, messages=True)))
        case "conversation.deleted":
            proto.conversation_deleted.conversation = proto.conversation
        case "member.added" | "member.removed" | "member.updated":
            getattr(proto, field).CopyFrom(_member(event))
        case "read.updated" | "delivered.updated":
            getattr(proto, field).CopyFrom(_read_state(event, event.type == "read.updated"))
        case "media.ready" | "media.failed":
            assert isinstance(event.payload, Media)
            getattr(proto, field).CopyFrom(media_proto(event.payload, urls))
        case "restriction.created" | "restriction.deleted":
            assert isinstance(event.payload, Restriction)
            getattr(proto, field).CopyFrom(restriction_proto(event.payload))
        case "flag.reported" | "flag.resolved":
            assert isinstance(event.payload, Flag)
            getattr(proto, field).CopyFrom(flag_proto(event.payload))
        case "billing.usage_threshold":
            assert isinstance(event.payload, pb.UsageThreshold)
            proto.billing_usage_threshold.CopyFrom(event.payload)
        case "e2ee.key_packages_low":
            proto.e2ee_key_packages_low.device = event.data["device"]
            proto.e2ee_key_packages_low.key_package_count = int(event.data["count"])
        case "call.started" | "call.updated" | "call.ended":
            assert isinstance(event.payload, Call)
            getattr(proto, field).CopyFrom(call_proto(event.payload, event.time))
        case "call.signal":
            assert isinstance(event.payload, calls_res.Signal)
            proto.call_signal.CopyFrom(event.payload)
        case _:
            raise ValueError(f"no stream form for event type {event.type}")
    return proto


def encoder(urls: MediaUrls) -> Encoder:
    """Encodes events for the log, once each, signing their media URLs with `urls`."""

    def encode(event: DomainEvent, position: int) -> bytes:
        return event_proto(event, position, urls).SerializeToString()

    return encode
