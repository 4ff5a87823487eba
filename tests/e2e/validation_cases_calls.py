"""One case per contract rule of the calls service (run by tests/e2e/test_validation.py,
whose guard fails when a rule has no case)."""

from __future__ import annotations

from caas.calls.v1 import calls_service_pb2 as pb
from caas.calls.v1 import resources_pb2 as res
from google.protobuf.message import Message

CONVERSATION = "apps/some-app/conversations/c1"
CALL = f"{CONVERSATION}/calls/k1"
OFFER = res.SessionDescription(type=res.SessionDescription.TYPE_OFFER, sdp="v=0")


def _start(**fields: object) -> pb.StartCallRequest:
    request = {"parent": CONVERSATION, "media": res.Call.MEDIA_AUDIO, "device_id": "d1",
               "request_id": "r1", **fields}
    return pb.StartCallRequest(**request)  # type: ignore[arg-type]


def _signal(**fields: object) -> pb.SendSignalRequest:
    request = {"call": CALL, "device_id": "d1", "to_user_id": "u2", "to_device_id": "d2",
               **fields}
    if "candidate" not in request and "description" not in request:
        request["description"] = OFFER
    return pb.SendSignalRequest(**request)  # type: ignore[arg-type]


def _candidate(**fields: object) -> pb.SendSignalRequest:
    return _signal(candidate=res.IceCandidate(**fields))  # type: ignore[arg-type]


CASES: list[tuple[str, str, Message, dict[str, str]]] = [
    ("start call parent", "StartCall", _start(parent=CALL), {"parent": "string.pattern"}),
    ("start call no parent", "StartCall", _start(parent=""), {"parent": "required"}),
    ("start call media", "StartCall", _start(media=0), {"media": "required"}),
    ("start call unknown media", "StartCall", _start(media=9),
     {"media": "enum.defined_only"}),
    ("start call device", "StartCall", _start(device_id="a b"),
     {"device_id": "string.pattern"}),
    ("start call no device", "StartCall", _start(device_id=""), {"device_id": "required"}),
    ("start call request id", "StartCall", _start(request_id="a b"),
     {"request_id": "string.pattern"}),
    ("start call no request id", "StartCall", _start(request_id=""),
     {"request_id": "required"}),
    ("start call invitees at most 100", "StartCall",
     _start(invitee_ids=[f"u{n}" for n in range(101)]), {"invitee_ids": "repeated.max_items"}),
    ("start call invitee twice", "StartCall", _start(invitee_ids=["u2", "u2"]),
     {"invitee_ids": "repeated.unique"}),
    ("start call invitee id", "StartCall", _start(invitee_ids=["a b"]),
     {"invitee_ids[0]": "string.pattern"}),
    ("accept call name", "AcceptCall", pb.AcceptCallRequest(name=CONVERSATION, device_id="d"),
     {"name": "string.pattern"}),
    ("accept call no name", "AcceptCall", pb.AcceptCallRequest(device_id="d"),
     {"name": "required"}),
    ("accept call device", "AcceptCall", pb.AcceptCallRequest(name=CALL, device_id="a b"),
     {"device_id": "string.pattern"}),
    ("accept call no device", "AcceptCall", pb.AcceptCallRequest(name=CALL),
     {"device_id": "required"}),
    ("decline call name", "DeclineCall", pb.DeclineCallRequest(name=f"{CALL}/x"),
     {"name": "string.pattern"}),
    ("leave call name", "LeaveCall", pb.LeaveCallRequest(name=CONVERSATION),
     {"name": "string.pattern"}),
    ("end call name", "EndCall", pb.EndCallRequest(name=CONVERSATION),
     {"name": "string.pattern"}),
    ("get call name", "GetCall", pb.GetCallRequest(name=CONVERSATION),
     {"name": "string.pattern"}),
    ("list calls parent", "ListCalls", pb.ListCallsRequest(parent=CALL),
     {"parent": "string.pattern"}),
    ("list calls page size", "ListCalls", pb.ListCallsRequest(parent=CONVERSATION,
                                                              page_size=101),
     {"page_size": "int32.gte_lte"}),
    ("list calls page token", "ListCalls",
     pb.ListCallsRequest(parent=CONVERSATION, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("signal call", "SendSignal", _signal(call=CONVERSATION), {"call": "string.pattern"}),
    ("signal no call", "SendSignal", _signal(call=""), {"call": "required"}),
    ("signal device", "SendSignal", _signal(device_id="a b"), {"device_id": "string.pattern"}),
    ("signal to user", "SendSignal", _signal(to_user_id="a b"),
     {"to_user_id": "string.pattern"}),
    ("signal no user", "SendSignal", _signal(to_user_id=""), {"to_user_id": "required"}),
    ("signal to device", "SendSignal", _signal(to_device_id="a b"),
     {"to_device_id": "string.pattern"}),
    ("signal no body", "SendSignal",
     pb.SendSignalRequest(call=CALL, device_id="d1", to_user_id="u2", to_device_id="d2"),
     {"": "message.oneof"}),
    ("signal description type", "SendSignal",
     _signal(description=res.SessionDescription(sdp="v=0")),
     {"description.type": "required"}),
    ("signal description unknown type", "SendSignal",
     _signal(description=res.SessionDescription(type=9, sdp="v=0")),  # type: ignore[arg-type]
     {"description.type": "enum.defined_only"}),
    ("signal sdp at most 64 KiB", "SendSignal",
     _signal(description=res.SessionDescription(type=res.SessionDescription.TYPE_OFFER,
                                                sdp="s" * 65537)),
     {"description.sdp": "string.max_bytes"}),
    ("signal candidate at most 1024", "SendSignal", _candidate(candidate="c" * 1025),
     {"candidate.candidate": "string.max_len"}),
    ("signal candidate mid at most 64", "SendSignal", _candidate(sdp_mid="m" * 65),
     {"candidate.sdp_mid": "string.max_len"}),
    ("signal candidate m-line", "SendSignal", _candidate(sdp_m_line_index=256),
     {"candidate.sdp_m_line_index": "int32.gte_lte"}),
    ("signal candidate ufrag", "SendSignal", _candidate(username_fragment="u" * 257),
     {"candidate.username_fragment": "string.max_len"}),
    ("ice servers call", "GetIceServers",
     pb.GetIceServersRequest(call=CONVERSATION, device_id="d1"), {"call": "string.pattern"}),
    ("ice servers device", "GetIceServers", pb.GetIceServersRequest(call=CALL, device_id="a b"),
     {"device_id": "string.pattern"}),
]
