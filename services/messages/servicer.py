"""caas.messages.v1.MessagesService: protobuf ↔ domain, nothing else."""

from __future__ import annotations

from datetime import timedelta

from caas.messages.v1 import messages_service_pb2 as pb
from caas.messages.v1 import resources_pb2 as res

from services.calls.protos import call_proto
from services.conversations.servicer import parse_conversation
from services.core.errors import invalid_field
from services.core.names import parse_user
from services.core.protoconv import timestamp
from services.gateway.gateway import Call
from services.media.delivery import MediaUrls
from services.media.servicer import media_name, parse_media, show_files
from services.messages.actions import MessagesActions, MlsSend, Outgoing, Shown, message_name
from services.messages.models import APPLICATION, COMMIT, Attachment, MessageChanges
from services.messages.store import Direction

ATTACHMENT_KINDS = {"image": res.Attachment.KIND_IMAGE, "video": res.Attachment.KIND_VIDEO,
                    "audio": res.Attachment.KIND_AUDIO, "file": res.Attachment.KIND_FILE,
                    "link": res.Attachment.KIND_LINK}
ATTACHMENT_KINDS_FROM_PROTO = {value: kind for kind, value in ATTACHMENT_KINDS.items()}


def parse_message(name: str, field: str = "name") -> tuple[str, str, int]:
    conversation, sep, sequence = name.partition("/messages/")
    if not sep or not sequence.isdigit():
        raise invalid_field(field, "must be apps/{app}/conversations/{c}/messages/{sequence}")
    return (*parse_conversation(conversation, field), int(sequence))


def attachment(proto: res.Attachment) -> Attachment:
    """An attachment as sent. A media reference carries only its id here: the actions
    fill in the rest from the media itself."""
    if proto.media:
        return Attachment("file", "", media_id=parse_media(proto.media, "attachments.media")[1])
    return Attachment(ATTACHMENT_KINDS_FROM_PROTO[proto.kind], proto.uri, proto.title,
                      proto.mime_type, proto.size_bytes, proto.width, proto.height)


def attachment_proto(app_id: str, a: Attachment, urls: MediaUrls) -> res.Attachment:
    proto = res.Attachment(kind=ATTACHMENT_KINDS[a.kind], uri=a.uri, title=a.title,
                           mime_type=a.mime_type, size_bytes=a.size_bytes, width=a.width,
                           height=a.height)
    if not a.media_id:
        return proto
    proto.media, proto.blurhash = media_name(app_id, a.media_id), a.blurhash
    if a.duration_ms:
        proto.duration.FromTimedelta(timedelta(milliseconds=a.duration_ms))
    show_files(proto, urls.links(app_id, a.media_id, tuple(r.size for r in a.renditions)),
               a.renditions)
    return proto


MLS_KINDS = {APPLICATION: res.MlsContent.KIND_APPLICATION, COMMIT: res.MlsContent.KIND_COMMIT}


def message_proto(shown: Shown, urls: MediaUrls) -> res.Message:
    """The message as callers see it; media attachments with URLs signed by `urls`."""
    m = shown.message
    return res.Message(
        name=message_name(m.app_id, m.conversation_id, m.sequence), sequence=m.sequence,
        sender_id=m.sender_id, sender_deleted=shown.sender_deleted, text=m.text,
        attachments=[attachment_proto(m.app_id, a, urls) for a in m.attachments],
        mention_ids=[x.user_id for x in m.mentions],
        mentions=[res.Mention(user_id=x.user_id, display_name=x.display_name)
                  for x in m.mentions],
        metadata=dict(m.metadata), thread_root_sequence=m.thread_root,
        reply_count=m.reply_count, last_reply_time=timestamp(m.last_reply_time),
        reactions=[res.ReactionCount(emoji=emoji, count=count,
                                     reacted_by_me=emoji in shown.reacted)
                   for emoji, count in m.reactions.items()],
        state=res.Message.STATE_DELETED if m.deleted else res.Message.STATE_ACTIVE,
        create_time=timestamp(m.create_time), edit_time=timestamp(m.edit_time),
        delete_time=timestamp(m.delete_time), shadowed=shown.shadowed,
        mls=None if m.mls is None else res.MlsContent(
            message=m.mls.data, device_id=m.mls.device_id, kind=MLS_KINDS[m.mls.kind],
            epoch=m.mls.epoch),
        call=None if m.call is None else call_proto(m.call, m.create_time))


def _position(request: pb.ListMessagesRequest) -> tuple[Direction, int]:
    which = request.WhichOneof("position")
    if which == "before_sequence":
        return "before", request.before_sequence
    if which == "after_sequence":
        return "after", request.after_sequence
    if which == "around_sequence":
        return "around", request.around_sequence
    return "latest", 0


class MessagesServicer:
    def __init__(self, actions: MessagesActions, urls: MediaUrls) -> None:
        self._actions = actions
        self._urls = urls

    async def CreateMessage(self, request: pb.CreateMessageRequest, call: Call
                            ) -> pb.CreateMessageResponse:
        m = request.message
        shown, created = await self._actions.do_send(
            call.principal, *parse_conversation(request.parent, "parent"),
            Outgoing(m.text, tuple(attachment(a) for a in m.attachments), list(m.mention_ids),
                     dict(m.metadata), m.thread_root_sequence, m.sender_id,
                     MlsSend(m.mls.message, m.mls.device_id, m.mls.welcome)
                     if m.HasField("mls") else None),
            request.request_id)
        return pb.CreateMessageResponse(message=message_proto(shown, self._urls), created=created)

    async def GetMessage(self, request: pb.GetMessageRequest, call: Call
                         ) -> pb.GetMessageResponse:
        shown = await self._actions.get(call.principal, *parse_message(request.name))
        return pb.GetMessageResponse(message=message_proto(shown, self._urls))

    async def ListMessages(self, request: pb.ListMessagesRequest, call: Call
                           ) -> pb.ListMessagesResponse:
        direction, sequence = _position(request)
        shown, before, after = await self._actions.list_messages(
            call.principal, *parse_conversation(request.parent, "parent"),
            request.thread_root_sequence, direction, sequence, request.page_size,
            request.filter)
        return pb.ListMessagesResponse(messages=[message_proto(s, self._urls) for s in shown],
                                       has_more_before=before, has_more_after=after)

    async def UpdateMessage(self, request: pb.UpdateMessageRequest, call: Call
                            ) -> pb.UpdateMessageResponse:
        m = request.message
        paths = set(request.update_mask.paths)
        shown = await self._actions.do_edit(
            call.principal, *parse_message(m.name, "message.name"),
            MessageChanges(
                text=m.text if "text" in paths else None,
                attachments=(tuple(attachment(a) for a in m.attachments)
                             if "attachments" in paths else None),
                metadata=dict(m.metadata) if "metadata" in paths else None))
        return pb.UpdateMessageResponse(message=message_proto(shown, self._urls))

    async def DeleteMessage(self, request: pb.DeleteMessageRequest, call: Call
                            ) -> pb.DeleteMessageResponse:
        shown = await self._actions.do_delete(call.principal, *parse_message(request.name))
        return pb.DeleteMessageResponse(message=message_proto(shown, self._urls))

    async def ListMessageRevisions(self, request: pb.ListMessageRevisionsRequest, call: Call
                                   ) -> pb.ListMessageRevisionsResponse:
        revisions = await self._actions.revisions(call.principal, *parse_message(request.name))
        return pb.ListMessageRevisionsResponse(revisions=[
            res.MessageRevision(revision=r.revision, text=r.text,
                                create_time=timestamp(r.create_time)) for r in revisions])

    async def AddReaction(self, request: pb.AddReactionRequest, call: Call
                          ) -> pb.AddReactionResponse:
        shown = await self._actions.do_react(call.user(), *parse_message(request.name),
                                             request.emoji, add=True)
        return pb.AddReactionResponse(message=message_proto(shown, self._urls))

    async def RemoveReaction(self, request: pb.RemoveReactionRequest, call: Call
                             ) -> pb.RemoveReactionResponse:
        shown = await self._actions.do_react(call.user(), *parse_message(request.name),
                                             request.emoji, add=False)
        return pb.RemoveReactionResponse(message=message_proto(shown, self._urls))

    async def ListReactions(self, request: pb.ListReactionsRequest, call: Call
                            ) -> pb.ListReactionsResponse:
        page = await self._actions.list_reactions(
            call.principal, *parse_message(request.parent, "parent"), request.page_size,
            request.page_token)
        return pb.ListReactionsResponse(
            reactions=[res.Reaction(user_id=r.user_id, emoji=r.emoji,
                                    create_time=timestamp(r.create_time)) for r in page.items],
            next_page_token=page.next_page_token)

    async def MarkRead(self, request: pb.MarkReadRequest, call: Call) -> pb.MarkReadResponse:
        member = await self._actions.do_mark(
            call.user(), *parse_conversation(request.conversation, "conversation"), "read",
            request.sequence)
        return pb.MarkReadResponse(read_sequence=member.read_sequence,
                                   unread_count=member.unread_count,
                                   unread_mention_count=member.unread_mention_count)

    async def MarkDelivered(self, request: pb.MarkDeliveredRequest, call: Call
                            ) -> pb.MarkDeliveredResponse:
        member = await self._actions.do_mark(
            call.user(), *parse_conversation(request.conversation, "conversation"),
            "delivered", request.sequence)
        return pb.MarkDeliveredResponse(delivered_sequence=member.delivered_sequence)

    async def ListReceipts(self, request: pb.ListReceiptsRequest, call: Call
                           ) -> pb.ListReceiptsResponse:
        app_id, conversation_id, sequence = parse_message(request.parent, "parent")
        page, summary = await self._actions.receipts(call.principal, app_id, conversation_id,
                                                     sequence, request.page_size,
                                                     request.page_token)
        return pb.ListReceiptsResponse(
            receipts=[res.Receipt(user_id=m.user_id,
                                  delivered=m.delivered_sequence >= sequence,
                                  read=m.read_sequence >= sequence,
                                  read_time=timestamp(m.read_time)) for m in page.items],
            next_page_token=page.next_page_token, read_count=summary.read,
            delivered_count=summary.delivered)

    async def GetUnreadCount(self, request: pb.GetUnreadCountRequest, call: Call
                             ) -> pb.GetUnreadCountResponse:
        app_id, user_id = parse_user(request.name.removesuffix("/unreadCount"), "name")
        total, conversations = await self._actions.unread(call.principal, app_id, user_id)
        return pb.GetUnreadCountResponse(unread_count=res.UnreadCount(
            name=request.name, total=total, conversations=conversations))
