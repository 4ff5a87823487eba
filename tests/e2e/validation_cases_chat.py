"""One case per contract rule of the users, conversations and messages services.

(case id, RPC, request breaking one rule, expected {field path: rule id}); run by
tests/e2e/test_validation.py, whose guard fails when a rule has no case here.
"""

from __future__ import annotations

from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from caas.users.v1 import resources_pb2 as user_res
from caas.users.v1 import users_service_pb2 as user_pb
from google.protobuf import duration_pb2, field_mask_pb2
from google.protobuf.message import Message

APP = "apps/some-app"
USER = f"{APP}/users/u1"
CONV = f"{APP}/conversations/c1"
MSG = f"{CONV}/messages/1"
LONG = "x" * 101
BAD_KEY = "bad key!"


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def text(**fields: object) -> msg_res.Message:
    return msg_res.Message(text="hi", **fields)  # type: ignore[arg-type]


def attach(**fields: object) -> msg_res.Message:
    base: dict[str, object] = {"kind": msg_res.Attachment.KIND_IMAGE, "uri": "https://x/y.png"}
    base.update(fields)
    return msg_res.Message(attachments=[msg_res.Attachment(**base)])  # type: ignore[arg-type]


def send(message: msg_res.Message) -> msg_pb.CreateMessageRequest:
    return msg_pb.CreateMessageRequest(parent=CONV, message=message, request_id="r1")


def edit(message: msg_res.Message) -> msg_pb.UpdateMessageRequest:
    message.name = MSG
    return msg_pb.UpdateMessageRequest(message=message, update_mask=mask("text"))


def create_conv(**fields: object) -> conv_pb.CreateConversationRequest:
    conversation = fields.pop("conversation", conv_res.Conversation(
        kind=conv_res.Conversation.KIND_GROUP))
    return conv_pb.CreateConversationRequest(parent=APP, conversation=conversation,
                                             **fields)  # type: ignore[arg-type]


def group(**fields: object) -> conv_res.Conversation:
    return conv_res.Conversation(kind=conv_res.Conversation.KIND_GROUP,
                                 **fields)  # type: ignore[arg-type]


def update_conv(conversation: conv_res.Conversation, *paths: str
                ) -> conv_pb.UpdateConversationRequest:
    if not conversation.name:
        conversation.name = CONV
    return conv_pb.UpdateConversationRequest(conversation=conversation,
                                             update_mask=mask(*(paths or ("title",))))


def user_update(user: user_res.User, *paths: str) -> user_pb.UpdateUserRequest:
    if not user.name:
        user.name = USER
    return user_pb.UpdateUserRequest(user=user, update_mask=mask(*(paths or ("display_name",))))


CASES: list[tuple[str, str, Message, dict[str, str]]] = [
    # UsersService
    ("CreateUser parent", "CreateUser", user_pb.CreateUserRequest(parent="apps/", user_id="u"),
     {"parent": "string.pattern"}),
    ("CreateUser user_id", "CreateUser", user_pb.CreateUserRequest(parent=APP, user_id="-x"),
     {"user_id": "string.pattern"}),
    ("CreateUser display_name", "CreateUser", user_pb.CreateUserRequest(
        parent=APP, user_id="u", user=user_res.User(display_name=LONG)),
     {"user.display_name": "string.max_len"}),
    ("CreateUser image_uri", "CreateUser", user_pb.CreateUserRequest(
        parent=APP, user_id="u", user=user_res.User(image_uri="not a uri")),
     {"user.image_uri": "string.uri"}),
    ("CreateUser metadata pairs", "CreateUser", user_pb.CreateUserRequest(
        parent=APP, user_id="u", user=user_res.User(metadata={f"k{i}": "v" for i in range(33)})),
     {"user.metadata": "map.max_pairs"}),
    ("CreateUser metadata key", "CreateUser", user_pb.CreateUserRequest(
        parent=APP, user_id="u", user=user_res.User(metadata={BAD_KEY: "v"})),
     {f'user.metadata["{BAD_KEY}"]': "string.pattern"}),
    ("CreateUser metadata value", "CreateUser", user_pb.CreateUserRequest(
        parent=APP, user_id="u", user=user_res.User(metadata={"k": "v" * 1025})),
     {'user.metadata["k"]': "string.max_len"}),
    ("CreateUser role", "CreateUser", user_pb.CreateUserRequest(
        parent=APP, user_id="u", user=user_res.User(role="Admin")),
     {"user.role": "string.pattern"}),
    ("UpdateUser role", "UpdateUser", user_update(user_res.User(role="r" * 33), "role"),
     {"user.role": "string.pattern"}),
    ("GetUser name", "GetUser", user_pb.GetUserRequest(name=APP), {"name": "string.pattern"}),
    ("ListUsers parent", "ListUsers", user_pb.ListUsersRequest(parent=USER),
     {"parent": "string.pattern"}),
    ("ListUsers page_size", "ListUsers", user_pb.ListUsersRequest(parent=APP, page_size=201),
     {"page_size": "int32.gte_lte"}),
    ("ListUsers page_token", "ListUsers",
     user_pb.ListUsersRequest(parent=APP, page_token="t" * 513), {"page_token": "string.max_len"}),
    ("ListUsers filter", "ListUsers",
     user_pb.ListUsersRequest(parent=APP, filter="f" * 1025), {"filter": "string.max_len"}),
    ("ListUsers order_by", "ListUsers",
     user_pb.ListUsersRequest(parent=APP, order_by="o" * 129), {"order_by": "string.max_len"}),
    ("UpdateUser user required", "UpdateUser",
     user_pb.UpdateUserRequest(update_mask=mask("display_name")), {"user": "required"}),
    ("UpdateUser name format", "UpdateUser", user_update(user_res.User(name=APP)),
     {"user": "user.name_format"}),
    ("UpdateUser display_name", "UpdateUser", user_update(user_res.User(display_name=LONG)),
     {"user.display_name": "string.max_len"}),
    ("UpdateUser image_uri", "UpdateUser",
     user_update(user_res.User(image_uri="nope"), "image_uri"), {"user.image_uri": "string.uri"}),
    ("UpdateUser metadata", "UpdateUser",
     user_update(user_res.User(metadata={BAD_KEY: "v"}), "metadata"),
     {f'user.metadata["{BAD_KEY}"]': "string.pattern"}),
    ("UpdateUser mask paths", "UpdateUser", user_update(user_res.User(), "name"),
     {"update_mask": "field_mask.in"}),
    ("UpdateUser mask empty", "UpdateUser",
     user_pb.UpdateUserRequest(user=user_res.User(name=USER), update_mask=mask()),
     {"update_mask": "update_mask.not_empty"}),
    ("UpdateUser mask required", "UpdateUser",
     user_pb.UpdateUserRequest(user=user_res.User(name=USER)), {"update_mask": "required"}),
    ("DeleteUser name", "DeleteUser", user_pb.DeleteUserRequest(name=f"{USER}/x"),
     {"name": "string.pattern"}),
    ("CreateBlock parent", "CreateBlock", user_pb.CreateBlockRequest(
        parent=APP, block=user_res.Block(blocked_user_id="b")), {"parent": "string.pattern"}),
    ("CreateBlock block required", "CreateBlock", user_pb.CreateBlockRequest(parent=USER),
     {"block": "required"}),
    ("CreateBlock blocked id", "CreateBlock", user_pb.CreateBlockRequest(
        parent=USER, block=user_res.Block(blocked_user_id="")),
     {"block.blocked_user_id": "required"}),
    ("CreateBlock blocked id pattern", "CreateBlock", user_pb.CreateBlockRequest(
        parent=USER, block=user_res.Block(blocked_user_id="no spaces")),
     {"block.blocked_user_id": "string.pattern"}),
    ("DeleteBlock name", "DeleteBlock", user_pb.DeleteBlockRequest(name=f"{USER}/blocks/"),
     {"name": "string.pattern"}),
    ("ListBlocks parent", "ListBlocks", user_pb.ListBlocksRequest(parent=APP),
     {"parent": "string.pattern"}),
    ("ListBlocks page_size", "ListBlocks", user_pb.ListBlocksRequest(parent=USER, page_size=-1),
     {"page_size": "int32.gte_lte"}),
    ("ListBlocks page_token", "ListBlocks",
     user_pb.ListBlocksRequest(parent=USER, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    # ConversationsService
    ("CreateConversation parent", "CreateConversation",
     conv_pb.CreateConversationRequest(parent=USER, conversation=group()),
     {"parent": "string.pattern"}),
    ("CreateConversation id", "CreateConversation", create_conv(conversation_id="-bad"),
     {"conversation_id": "string.pattern"}),
    ("CreateConversation conversation required", "CreateConversation",
     conv_pb.CreateConversationRequest(parent=APP), {"conversation": "required"}),
    ("CreateConversation kind required", "CreateConversation",
     create_conv(conversation=conv_res.Conversation(title="t")),
     {"conversation": "conversation.kind_required"}),
    ("CreateConversation kind defined", "CreateConversation",
     create_conv(conversation=conv_res.Conversation(kind=9)),  # type: ignore[arg-type]
     {"conversation.kind": "enum.defined_only"}),
    ("CreateConversation title", "CreateConversation",
     create_conv(conversation=group(title="t" * 201)), {"conversation.title": "string.max_len"}),
    ("CreateConversation image_uri", "CreateConversation",
     create_conv(conversation=group(image_uri="nope")), {"conversation.image_uri": "string.uri"}),
    ("CreateConversation metadata", "CreateConversation",
     create_conv(conversation=group(metadata={"k": "v" * 1025})),
     {'conversation.metadata["k"]': "string.max_len"}),
    ("CreateConversation membership role", "CreateConversation",
     create_conv(conversation=group(membership=conv_res.Member(role=9))),  # type: ignore[arg-type]
     {"conversation.membership.role": "enum.defined_only"}),
    ("CreateConversation slow_mode at most 6 h", "CreateConversation",
     create_conv(conversation=group(slow_mode=duration_pb2.Duration(seconds=21601))),
     {"conversation.slow_mode": "duration.gte_lte"}),
    ("CreateConversation member_ids count", "CreateConversation",
     create_conv(member_ids=[f"u{i}" for i in range(101)]), {"member_ids": "repeated.max_items"}),
    ("CreateConversation member_ids unique", "CreateConversation",
     create_conv(member_ids=["u1", "u1"]), {"member_ids": "repeated.unique"}),
    ("CreateConversation member_ids shape", "CreateConversation",
     create_conv(member_ids=["-u"]), {"member_ids[0]": "string.pattern"}),
    ("CreateConversation owner_id", "CreateConversation", create_conv(owner_id="-o"),
     {"owner_id": "string.pattern"}),
    ("GetConversation name", "GetConversation",
     conv_pb.GetConversationRequest(name=f"{APP}/conversations/"), {"name": "string.pattern"}),
    ("UpdateConversation required", "UpdateConversation",
     conv_pb.UpdateConversationRequest(update_mask=mask("title")),
     {"conversation": "required"}),
    ("UpdateConversation name", "UpdateConversation",
     update_conv(conv_res.Conversation(name=APP)), {"conversation": "conversation.name_format"}),
    ("UpdateConversation kind", "UpdateConversation",
     update_conv(conv_res.Conversation(kind=9)),  # type: ignore[arg-type]
     {"conversation.kind": "enum.defined_only"}),
    ("UpdateConversation type", "UpdateConversation",
     update_conv(conv_res.Conversation(type="Support")),
     {"conversation.type": "string.pattern"}),
    ("CreateConversation type", "CreateConversation",
     create_conv(conversation=group(type="-x")), {"conversation.type": "string.pattern"}),
    ("UpdateConversation title", "UpdateConversation",
     update_conv(conv_res.Conversation(title="t" * 201)),
     {"conversation.title": "string.max_len"}),
    ("UpdateConversation image_uri", "UpdateConversation",
     update_conv(conv_res.Conversation(image_uri="nope"), "image_uri"),
     {"conversation.image_uri": "string.uri"}),
    ("UpdateConversation metadata", "UpdateConversation",
     update_conv(conv_res.Conversation(metadata={f"k{i}": "v" for i in range(33)}), "metadata"),
     {"conversation.metadata": "map.max_pairs"}),
    ("UpdateConversation membership role", "UpdateConversation",
     update_conv(conv_res.Conversation(
         membership=conv_res.Member(role=9))),  # type: ignore[arg-type]
     {"conversation.membership.role": "enum.defined_only"}),
    ("UpdateConversation slow_mode not negative", "UpdateConversation",
     update_conv(conv_res.Conversation(slow_mode=duration_pb2.Duration(seconds=-1)),
                 "slow_mode"), {"conversation.slow_mode": "duration.gte_lte"}),
    ("UpdateConversation mask paths", "UpdateConversation",
     update_conv(conv_res.Conversation(), "kind"), {"update_mask": "field_mask.in"}),
    ("UpdateConversation mask empty", "UpdateConversation",
     conv_pb.UpdateConversationRequest(conversation=conv_res.Conversation(name=CONV),
                                       update_mask=mask()),
     {"update_mask": "update_mask.not_empty"}),
    ("UpdateConversation mask required", "UpdateConversation",
     conv_pb.UpdateConversationRequest(conversation=conv_res.Conversation(name=CONV)),
     {"update_mask": "required"}),
    ("DeleteConversation name", "DeleteConversation",
     conv_pb.DeleteConversationRequest(name=APP), {"name": "string.pattern"}),
    ("ListConversations parent", "ListConversations",
     conv_pb.ListConversationsRequest(parent=APP), {"parent": "string.pattern"}),
    ("ListConversations page_size", "ListConversations",
     conv_pb.ListConversationsRequest(parent=USER, page_size=201), {"page_size": "int32.gte_lte"}),
    ("ListConversations page_token", "ListConversations",
     conv_pb.ListConversationsRequest(parent=USER, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("ListConversations filter", "ListConversations",
     conv_pb.ListConversationsRequest(parent=USER, filter="f" * 1025),
     {"filter": "string.max_len"}),
    ("ListConversations order_by", "ListConversations",
     conv_pb.ListConversationsRequest(parent=USER, order_by="o" * 129),
     {"order_by": "string.max_len"}),
    ("ListChannels parent", "ListChannels", conv_pb.ListChannelsRequest(parent=USER),
     {"parent": "string.pattern"}),
    ("ListChannels page_size", "ListChannels",
     conv_pb.ListChannelsRequest(parent=APP, page_size=201), {"page_size": "int32.gte_lte"}),
    ("ListChannels page_token", "ListChannels",
     conv_pb.ListChannelsRequest(parent=APP, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("JoinConversation name", "JoinConversation", conv_pb.JoinConversationRequest(name=USER),
     {"name": "string.pattern"}),
    ("LeaveConversation name", "LeaveConversation", conv_pb.LeaveConversationRequest(name=USER),
     {"name": "string.pattern"}),
    ("AddMembers conversation", "AddMembers",
     conv_pb.AddMembersRequest(conversation=APP, user_ids=["u"]),
     {"conversation": "string.pattern"}),
    ("AddMembers none", "AddMembers", conv_pb.AddMembersRequest(conversation=CONV),
     {"user_ids": "required"}),
    ("AddMembers too many", "AddMembers",
     conv_pb.AddMembersRequest(conversation=CONV, user_ids=[f"u{i}" for i in range(101)]),
     {"user_ids": "repeated.max_items"}),
    ("AddMembers unique", "AddMembers",
     conv_pb.AddMembersRequest(conversation=CONV, user_ids=["u", "u"]),
     {"user_ids": "repeated.unique"}),
    ("AddMembers shape", "AddMembers",
     conv_pb.AddMembersRequest(conversation=CONV, user_ids=["u", "/x"]),
     {"user_ids[1]": "string.pattern"}),
    ("RemoveMember name", "RemoveMember", conv_pb.RemoveMemberRequest(name=CONV),
     {"name": "string.pattern"}),
    ("GetMember name", "GetMember", conv_pb.GetMemberRequest(name=f"{CONV}/members/"),
     {"name": "string.pattern"}),
    ("ListMembers parent", "ListMembers", conv_pb.ListMembersRequest(parent=APP),
     {"parent": "string.pattern"}),
    ("ListMembers page_size", "ListMembers",
     conv_pb.ListMembersRequest(parent=CONV, page_size=201), {"page_size": "int32.gte_lte"}),
    ("ListMembers page_token", "ListMembers",
     conv_pb.ListMembersRequest(parent=CONV, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("ListMembers filter", "ListMembers",
     conv_pb.ListMembersRequest(parent=CONV, filter="f" * 1025), {"filter": "string.max_len"}),
    ("ListMembers order_by", "ListMembers",
     conv_pb.ListMembersRequest(parent=CONV, order_by="o" * 129),
     {"order_by": "string.max_len"}),
    ("UpdateMember required", "UpdateMember",
     conv_pb.UpdateMemberRequest(update_mask=mask("muted")), {"member": "required"}),
    ("UpdateMember name", "UpdateMember", conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=CONV), update_mask=mask("muted")),
     {"member": "member.name_format"}),
    ("UpdateMember role defined", "UpdateMember", conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{CONV}/members/u", role=9),  # type: ignore[arg-type]
        update_mask=mask("muted")), {"member.role": "enum.defined_only"}),
    ("UpdateMember role assignable", "UpdateMember", conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{CONV}/members/u", role=conv_res.Member.ROLE_OWNER),
        update_mask=mask("role")), {"": "update_member.role_assignable"}),
    ("UpdateMember mask paths", "UpdateMember", conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{CONV}/members/u"), update_mask=mask("user_id")),
     {"update_mask": "field_mask.in"}),
    ("UpdateMember mask empty", "UpdateMember", conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{CONV}/members/u"), update_mask=mask()),
     {"update_mask": "update_mask.not_empty"}),
    ("UpdateMember mask required", "UpdateMember", conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{CONV}/members/u")), {"update_mask": "required"}),
    # MessagesService
    ("CreateMessage parent", "CreateMessage",
     msg_pb.CreateMessageRequest(parent=APP, message=text(), request_id="r"),
     {"parent": "string.pattern"}),
    ("CreateMessage required", "CreateMessage",
     msg_pb.CreateMessageRequest(parent=CONV, request_id="r"), {"message": "required"}),
    ("CreateMessage empty", "CreateMessage", send(msg_res.Message()),
     {"message": "message.not_empty"}),
    ("CreateMessage request_id", "CreateMessage",
     msg_pb.CreateMessageRequest(parent=CONV, message=text(), request_id="has space"),
     {"request_id": "string.pattern"}),
    ("CreateMessage sender_id", "CreateMessage", send(text(sender_id="-s")),
     {"message.sender_id": "string.pattern"}),
    ("CreateMessage text at most 4000", "CreateMessage",
     send(msg_res.Message(text="t" * 4001)), {"message.text": "string.max_len"}),
    ("CreateMessage attachments at most 10", "CreateMessage",
     send(msg_res.Message(attachments=[msg_res.Attachment(
         kind=msg_res.Attachment.KIND_FILE, uri="https://x/f")] * 11)),
     {"message.attachments": "repeated.max_items"}),
    ("CreateMessage attachment kind", "CreateMessage",
     send(attach(kind=msg_res.Attachment.KIND_UNSPECIFIED)),
     {"message.attachments[0]": "attachment.kind"}),
    ("CreateMessage attachment kind defined", "CreateMessage", send(attach(kind=9)),
     {"message.attachments[0].kind": "enum.defined_only"}),
    ("CreateMessage attachment media", "CreateMessage",
     send(attach(uri="", media="apps/some-app/media/NOT-AN-ID")),
     {"message.attachments[0].media": "string.pattern"}),
    ("CreateMessage attachment without media or uri", "CreateMessage",
     send(attach(uri="")), {"message.attachments[0]": "attachment.media_or_uri"}),
    ("CreateMessage attachment uri", "CreateMessage", send(attach(uri="relative/x")),
     {"message.attachments[0].uri": "string.uri"}),
    ("CreateMessage attachment title", "CreateMessage", send(attach(title="t" * 256)),
     {"message.attachments[0].title": "string.max_len"}),
    ("CreateMessage attachment mime", "CreateMessage", send(attach(mime_type="m" * 128)),
     {"message.attachments[0].mime_type": "string.max_len"}),
    ("CreateMessage attachment size", "CreateMessage", send(attach(size_bytes=-1)),
     {"message.attachments[0].size_bytes": "int64.gte_lte"}),
    ("CreateMessage attachment width", "CreateMessage", send(attach(width=100_001)),
     {"message.attachments[0].width": "int32.gte_lte"}),
    ("CreateMessage attachment height", "CreateMessage", send(attach(height=-5)),
     {"message.attachments[0].height": "int32.gte_lte"}),
    ("CreateMessage mentions count", "CreateMessage",
     send(text(mention_ids=[f"u{i}" for i in range(51)])),
     {"message.mention_ids": "repeated.max_items"}),
    ("CreateMessage mention shape", "CreateMessage", send(text(mention_ids=["@"])),
     {"message.mention_ids[0]": "string.pattern"}),
    ("CreateMessage metadata", "CreateMessage",
     send(text(metadata={f"k{i}": "v" for i in range(17)})),
     {"message.metadata": "map.max_pairs"}),
    ("CreateMessage thread root", "CreateMessage", send(text(thread_root_sequence=-1)),
     {"message.thread_root_sequence": "int64.gte"}),
    ("GetMessage name", "GetMessage", msg_pb.GetMessageRequest(name=f"{CONV}/messages/0"),
     {"name": "string.pattern"}),
    ("ListMessages parent", "ListMessages", msg_pb.ListMessagesRequest(parent=APP),
     {"parent": "string.pattern"}),
    ("ListMessages page_size", "ListMessages",
     msg_pb.ListMessagesRequest(parent=CONV, page_size=201), {"page_size": "int32.gte_lte"}),
    ("ListMessages before", "ListMessages",
     msg_pb.ListMessagesRequest(parent=CONV, before_sequence=0),
     {"before_sequence": "int64.gt"}),
    ("ListMessages after", "ListMessages",
     msg_pb.ListMessagesRequest(parent=CONV, after_sequence=-1), {"after_sequence": "int64.gte"}),
    ("ListMessages around", "ListMessages",
     msg_pb.ListMessagesRequest(parent=CONV, around_sequence=-3),
     {"around_sequence": "int64.gt"}),
    ("ListMessages thread", "ListMessages",
     msg_pb.ListMessagesRequest(parent=CONV, thread_root_sequence=-1),
     {"thread_root_sequence": "int64.gte"}),
    ("ListMessages filter", "ListMessages",
     msg_pb.ListMessagesRequest(parent=CONV, filter="f" * 1025), {"filter": "string.max_len"}),
    ("UpdateMessage required", "UpdateMessage",
     msg_pb.UpdateMessageRequest(update_mask=mask("text")), {"message": "required"}),
    ("UpdateMessage name", "UpdateMessage", msg_pb.UpdateMessageRequest(
        message=msg_res.Message(name=CONV), update_mask=mask("text")),
     {"message": "message.name_format"}),
    ("UpdateMessage sender_id", "UpdateMessage", edit(text(sender_id="-s")),
     {"message.sender_id": "string.pattern"}),
    ("UpdateMessage text", "UpdateMessage", edit(msg_res.Message(text="t" * 4001)),
     {"message.text": "string.max_len"}),
    ("UpdateMessage attachments", "UpdateMessage", edit(msg_res.Message(
        attachments=[msg_res.Attachment(kind=msg_res.Attachment.KIND_LINK,
                                        uri="https://x")] * 11)),
     {"message.attachments": "repeated.max_items"}),
    ("UpdateMessage attachment kind", "UpdateMessage", edit(attach(kind=9)),
     {"message.attachments[0].kind": "enum.defined_only"}),
    ("UpdateMessage attachment uri", "UpdateMessage", edit(attach(uri="no uri")),
     {"message.attachments[0].uri": "string.uri"}),
    ("UpdateMessage attachment media", "UpdateMessage",
     edit(attach(media="apps/some-app/media/x")),
     {"message.attachments[0].media": "string.pattern"}),
    ("UpdateMessage attachment title", "UpdateMessage", edit(attach(title="t" * 256)),
     {"message.attachments[0].title": "string.max_len"}),
    ("UpdateMessage attachment mime", "UpdateMessage", edit(attach(mime_type="m" * 128)),
     {"message.attachments[0].mime_type": "string.max_len"}),
    ("UpdateMessage attachment size", "UpdateMessage", edit(attach(size_bytes=5368709121)),
     {"message.attachments[0].size_bytes": "int64.gte_lte"}),
    ("UpdateMessage attachment width", "UpdateMessage", edit(attach(width=-1)),
     {"message.attachments[0].width": "int32.gte_lte"}),
    ("UpdateMessage attachment height", "UpdateMessage", edit(attach(height=100_001)),
     {"message.attachments[0].height": "int32.gte_lte"}),
    ("UpdateMessage mentions", "UpdateMessage", edit(text(mention_ids=["a", "a"])),
     {"message.mention_ids": "repeated.unique"}),
    ("UpdateMessage metadata", "UpdateMessage", edit(text(metadata={BAD_KEY: "v"})),
     {f'message.metadata["{BAD_KEY}"]': "string.pattern"}),
    ("UpdateMessage thread root", "UpdateMessage", edit(text(thread_root_sequence=-2)),
     {"message.thread_root_sequence": "int64.gte"}),
    ("UpdateMessage mask paths", "UpdateMessage", msg_pb.UpdateMessageRequest(
        message=msg_res.Message(name=MSG), update_mask=mask("sender_id")),
     {"update_mask": "field_mask.in"}),
    ("UpdateMessage mask empty", "UpdateMessage", msg_pb.UpdateMessageRequest(
        message=msg_res.Message(name=MSG), update_mask=mask()),
     {"update_mask": "update_mask.not_empty"}),
    ("UpdateMessage mask required", "UpdateMessage",
     msg_pb.UpdateMessageRequest(message=msg_res.Message(name=MSG)), {"update_mask": "required"}),
    ("DeleteMessage name", "DeleteMessage", msg_pb.DeleteMessageRequest(name=f"{CONV}/messages/x"),
     {"name": "string.pattern"}),
    ("ListMessageRevisions name", "ListMessageRevisions",
     msg_pb.ListMessageRevisionsRequest(name=CONV), {"name": "string.pattern"}),
    ("AddReaction name", "AddReaction", msg_pb.AddReactionRequest(name=CONV, emoji="👍"),
     {"name": "string.pattern"}),
    ("AddReaction emoji empty", "AddReaction", msg_pb.AddReactionRequest(name=MSG),
     {"emoji": "required"}),
    ("AddReaction emoji long", "AddReaction", msg_pb.AddReactionRequest(name=MSG, emoji="e" * 65),
     {"emoji": "string.max_len"}),
    ("RemoveReaction name", "RemoveReaction", msg_pb.RemoveReactionRequest(name=APP, emoji="x"),
     {"name": "string.pattern"}),
    ("RemoveReaction emoji", "RemoveReaction", msg_pb.RemoveReactionRequest(name=MSG),
     {"emoji": "required"}),
    ("ListReactions parent", "ListReactions", msg_pb.ListReactionsRequest(parent=CONV),
     {"parent": "string.pattern"}),
    ("ListReactions page_size", "ListReactions",
     msg_pb.ListReactionsRequest(parent=MSG, page_size=201), {"page_size": "int32.gte_lte"}),
    ("ListReactions page_token", "ListReactions",
     msg_pb.ListReactionsRequest(parent=MSG, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("MarkRead conversation", "MarkRead", msg_pb.MarkReadRequest(conversation=MSG),
     {"conversation": "string.pattern"}),
    ("MarkRead sequence", "MarkRead", msg_pb.MarkReadRequest(conversation=CONV, sequence=-1),
     {"sequence": "int64.gte"}),
    ("MarkDelivered conversation", "MarkDelivered",
     msg_pb.MarkDeliveredRequest(conversation=APP), {"conversation": "string.pattern"}),
    ("MarkDelivered sequence", "MarkDelivered",
     msg_pb.MarkDeliveredRequest(conversation=CONV, sequence=-1), {"sequence": "int64.gte"}),
    ("ListReceipts parent", "ListReceipts", msg_pb.ListReceiptsRequest(parent=CONV),
     {"parent": "string.pattern"}),
    ("ListReceipts page_size", "ListReceipts",
     msg_pb.ListReceiptsRequest(parent=MSG, page_size=201), {"page_size": "int32.gte_lte"}),
    ("ListReceipts page_token", "ListReceipts",
     msg_pb.ListReceiptsRequest(parent=MSG, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("GetUnreadCount name", "GetUnreadCount", msg_pb.GetUnreadCountRequest(name=USER),
     {"name": "string.pattern"}),
]
