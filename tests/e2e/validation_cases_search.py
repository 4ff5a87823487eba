"""One case per contract rule of the search service (run by tests/e2e/test_validation.py,
whose guard fails when a rule has no case)."""

from __future__ import annotations

from caas.messages.v1 import resources_pb2 as msg_res
from caas.search.v1 import search_service_pb2 as pb
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

APP = "apps/some-app"
CONVERSATION = f"{APP}/conversations/c1"

CASES: list[tuple[str, str, Message, dict[str, str]]] = [
    ("SearchMessages parent", "SearchMessages", pb.SearchMessagesRequest(parent="apps/"),
     {"parent": "string.pattern"}),
    ("SearchMessages query at most 256", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP, query="q" * 257), {"query": "string.max_len"}),
    ("SearchMessages conversations names", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP, conversations=["c1"]),
     {"conversations[0]": "string.pattern"}),
    ("SearchMessages conversations at most 100", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP, conversations=[f"{APP}/conversations/c{n}"
                                                         for n in range(101)]),
     {"conversations": "repeated.max_items"}),
    ("SearchMessages conversations unique", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP, conversations=[CONVERSATION, CONVERSATION]),
     {"conversations": "repeated.unique"}),
    ("SearchMessages sender_ids pattern", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP, sender_ids=["no spaces"]),
     {"sender_ids[0]": "string.pattern"}),
    ("SearchMessages sender_ids at most 100", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP, sender_ids=[f"u{n}" for n in range(101)]),
     {"sender_ids": "repeated.max_items"}),
    ("SearchMessages sender_ids unique", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP, sender_ids=["u1", "u1"]),
     {"sender_ids": "repeated.unique"}),
    ("SearchMessages attachment_kinds defined", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP, attachment_kinds=[99]),  # type: ignore[list-item]
     {"attachment_kinds[0]": "enum.defined_only"}),
    ("SearchMessages attachment_kinds not unspecified", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP,
                              attachment_kinds=[msg_res.Attachment.KIND_UNSPECIFIED]),
     {"attachment_kinds[0]": "enum.not_in"}),
    ("SearchMessages attachment_kinds unique", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP, attachment_kinds=[1, 1]),  # type: ignore[list-item]
     {"attachment_kinds": "repeated.unique"}),
    ("SearchMessages mentioned_user_id pattern", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP, mentioned_user_id="no spaces"),
     {"mentioned_user_id": "string.pattern"}),
    ("SearchMessages order defined", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP, order=9),  # type: ignore[arg-type]
     {"order": "enum.defined_only"}),
    ("SearchMessages page_size at most 50", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP, page_size=51), {"page_size": "int32.gte_lte"}),
    ("SearchMessages page_token at most 512", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("SearchMessages time range", "SearchMessages",
     pb.SearchMessagesRequest(parent=APP, start_time=timestamp_pb2.Timestamp(seconds=20),
                              end_time=timestamp_pb2.Timestamp(seconds=10)),
     {"": "search_messages.time_range"}),
    ("SearchConversations parent", "SearchConversations",
     pb.SearchConversationsRequest(parent="apps/", query="q"), {"parent": "string.pattern"}),
    ("SearchConversations query required", "SearchConversations",
     pb.SearchConversationsRequest(parent=APP), {"query": "required"}),
    ("SearchConversations query at most 256", "SearchConversations",
     pb.SearchConversationsRequest(parent=APP, query="q" * 257),
     {"query": "string.max_len"}),
    ("SearchConversations page_size at most 50", "SearchConversations",
     pb.SearchConversationsRequest(parent=APP, query="q", page_size=51),
     {"page_size": "int32.gte_lte"}),
    ("SearchConversations page_token at most 512", "SearchConversations",
     pb.SearchConversationsRequest(parent=APP, query="q", page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("SearchUsers parent", "SearchUsers", pb.SearchUsersRequest(parent="apps/", prefix="a"),
     {"parent": "string.pattern"}),
    ("SearchUsers prefix required", "SearchUsers", pb.SearchUsersRequest(parent=APP),
     {"prefix": "required"}),
    ("SearchUsers prefix at most 64", "SearchUsers",
     pb.SearchUsersRequest(parent=APP, prefix="p" * 65), {"prefix": "string.max_len"}),
    ("SearchUsers conversation", "SearchUsers",
     pb.SearchUsersRequest(parent=APP, prefix="a", conversation="c1"),
     {"conversation": "string.pattern"}),
    ("SearchUsers page_size at most 50", "SearchUsers",
     pb.SearchUsersRequest(parent=APP, prefix="a", page_size=51),
     {"page_size": "int32.gte_lte"}),
]
