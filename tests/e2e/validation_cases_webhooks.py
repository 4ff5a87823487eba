"""One case per contract rule of the webhooks service (run by tests/e2e/test_validation.py,
whose guard fails when a rule has no case)."""

from __future__ import annotations

from caas.webhooks.v1 import resources_pb2 as res
from caas.webhooks.v1 import webhooks_service_pb2 as pb
from google.protobuf import duration_pb2, field_mask_pb2
from google.protobuf.message import Message

APP = "apps/some-app"
HOOK = f"{APP}/webhooks/aaaaaaaaaaaaaaaa"
URL = "https://example.com/hook"
B32 = "abcdefghijklmnopqrstuvwxyz234567"


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def create(**fields: object) -> pb.CreateWebhookRequest:
    base: dict[str, object] = {"url": URL}
    base.update(fields)
    return pb.CreateWebhookRequest(parent=APP, webhook=res.Webhook(**base))  # type: ignore[arg-type]


def update(**fields: object) -> pb.UpdateWebhookRequest:
    return pb.UpdateWebhookRequest(webhook=res.Webhook(name=HOOK, **fields),  # type: ignore[arg-type]
                                   update_mask=mask("description"))


CASES: list[tuple[str, str, Message, dict[str, str]]] = [
    ("CreateWebhook parent pattern", "CreateWebhook",
     pb.CreateWebhookRequest(parent="apps/X", webhook=res.Webhook(url=URL)),
     {"parent": "string.pattern"}),
    ("CreateWebhook webhook required", "CreateWebhook", pb.CreateWebhookRequest(parent=APP),
     {"webhook": "required"}),
    ("CreateWebhook url required", "CreateWebhook",
     pb.CreateWebhookRequest(parent=APP, webhook=res.Webhook(description="x")),
     {"webhook.url": "required"}),
    ("CreateWebhook url is a URI", "CreateWebhook", create(url="not a url"),
     {"webhook.url": "string.uri"}),
    ("CreateWebhook url at most 2048", "CreateWebhook",
     create(url="https://example.com/" + "x" * 2048), {"webhook.url": "string.max_len"}),
    ("CreateWebhook event_types at most 32", "CreateWebhook",
     create(event_types=[f"message.t{'x' * n}" for n in range(33)]),
     {"webhook.event_types": "repeated.max_items"}),
    ("CreateWebhook event_types unique", "CreateWebhook",
     create(event_types=["message.*", "message.*"]), {"webhook.event_types": "repeated.unique"}),
    ("CreateWebhook event_types shape", "CreateWebhook", create(event_types=["Message"]),
     {"webhook.event_types[0]": "string.pattern"}),
    ("CreateWebhook description at most 200", "CreateWebhook", create(description="x" * 201),
     {"webhook.description": "string.max_len"}),
    ("GetWebhook name pattern", "GetWebhook", pb.GetWebhookRequest(name=f"{APP}/webhooks/x"),
     {"name": "string.pattern"}),
    ("ListWebhooks parent pattern", "ListWebhooks", pb.ListWebhooksRequest(parent="x"),
     {"parent": "string.pattern"}),
    ("ListWebhooks page_size at most 200", "ListWebhooks",
     pb.ListWebhooksRequest(parent=APP, page_size=201), {"page_size": "int32.gte_lte"}),
    ("ListWebhooks page_token at most 512", "ListWebhooks",
     pb.ListWebhooksRequest(parent=APP, page_token="t" * 513), {"page_token": "string.max_len"}),
    ("UpdateWebhook webhook required", "UpdateWebhook",
     pb.UpdateWebhookRequest(update_mask=mask("url")), {"webhook": "required"}),
    ("UpdateWebhook name format", "UpdateWebhook",
     pb.UpdateWebhookRequest(webhook=res.Webhook(name="apps/x", url="https://a.example"),
                             update_mask=mask("url")),
     {"webhook": "webhook.name_format"}),
    ("UpdateWebhook url is a URI", "UpdateWebhook", update(url="::"),
     {"webhook.url": "string.uri"}),
    ("UpdateWebhook event_types shape", "UpdateWebhook", update(event_types=["*.*"]),
     {"webhook.event_types[0]": "string.pattern"}),
    ("UpdateWebhook description at most 200", "UpdateWebhook", update(description="x" * 201),
     {"webhook.description": "string.max_len"}),
    ("UpdateWebhook update_mask required", "UpdateWebhook",
     pb.UpdateWebhookRequest(webhook=res.Webhook(name=HOOK)), {"update_mask": "required"}),
    ("UpdateWebhook update_mask paths", "UpdateWebhook",
     pb.UpdateWebhookRequest(webhook=res.Webhook(name=HOOK), update_mask=mask("secret_hint")),
     {"update_mask": "field_mask.in"}),
    ("DeleteWebhook name pattern", "DeleteWebhook", pb.DeleteWebhookRequest(name=APP),
     {"name": "string.pattern"}),
    ("RotateWebhookSecret name pattern", "RotateWebhookSecret",
     pb.RotateWebhookSecretRequest(name="x"), {"name": "string.pattern"}),
    ("RotateWebhookSecret overlap at most 7 days", "RotateWebhookSecret",
     pb.RotateWebhookSecretRequest(name=HOOK,
                                   previous_secret_ttl=duration_pb2.Duration(seconds=604801)),
     {"previous_secret_ttl": "duration.gte_lte"}),
    ("RotateWebhookSecret overlap not negative", "RotateWebhookSecret",
     pb.RotateWebhookSecretRequest(name=HOOK,
                                   previous_secret_ttl=duration_pb2.Duration(seconds=-1)),
     {"previous_secret_ttl": "duration.gte_lte"}),
    ("ListDeliveryAttempts parent pattern", "ListDeliveryAttempts",
     pb.ListDeliveryAttemptsRequest(parent=APP), {"parent": "string.pattern"}),
    ("ListDeliveryAttempts page_size not negative", "ListDeliveryAttempts",
     pb.ListDeliveryAttemptsRequest(parent=HOOK, page_size=-1), {"page_size": "int32.gte_lte"}),
    ("ListDeliveryAttempts page_token at most 512", "ListDeliveryAttempts",
     pb.ListDeliveryAttemptsRequest(parent=HOOK, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("ListDeliveryAttempts event at most 200", "ListDeliveryAttempts",
     pb.ListDeliveryAttemptsRequest(parent=HOOK, event="e" * 201), {"event": "string.max_len"}),
    ("ListDeadLetters parent pattern", "ListDeadLetters",
     pb.ListDeadLettersRequest(parent=f"{HOOK}/x"), {"parent": "string.pattern"}),
    ("ListDeadLetters page_size at most 200", "ListDeadLetters",
     pb.ListDeadLettersRequest(parent=HOOK, page_size=500), {"page_size": "int32.gte_lte"}),
    ("ListDeadLetters page_token at most 512", "ListDeadLetters",
     pb.ListDeadLettersRequest(parent=HOOK, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("ReplayDeadLetters parent pattern", "ReplayDeadLetters",
     pb.ReplayDeadLettersRequest(parent=APP), {"parent": "string.pattern"}),
    ("ReplayDeadLetters names at most 100", "ReplayDeadLetters",
     pb.ReplayDeadLettersRequest(parent=HOOK, names=[
         f"{HOOK}/deadLetters/{'a' * 14}{B32[n // 32]}{B32[n % 32]}" for n in range(101)]),
     {"names": "repeated.max_items"}),
    ("ReplayDeadLetters names unique", "ReplayDeadLetters",
     pb.ReplayDeadLettersRequest(parent=HOOK, names=[f"{HOOK}/deadLetters/{'b' * 16}"] * 2),
     {"names": "repeated.unique"}),
    ("ReplayDeadLetters names shape", "ReplayDeadLetters",
     pb.ReplayDeadLettersRequest(parent=HOOK, names=[f"{HOOK}/deadLetters/x"]),
     {"names[0]": "string.pattern"}),
]
