"""caas.webhooks.v1.WebhooksService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from caas.webhooks.v1 import resources_pb2 as res
from caas.webhooks.v1 import webhooks_service_pb2 as pb

from services.core.errors import invalid_field
from services.core.names import parse_app, parse_children, parse_dead_letter, parse_webhook
from services.core.protoconv import duration_or_none, timestamp
from services.gateway.gateway import Call
from services.webhooks.actions import WebhookChanges, WebhooksActions, webhook_name
from services.webhooks.models import DeadLetter, DeliveryAttempt, Webhook


def webhook_proto(w: Webhook) -> res.Webhook:
    return res.Webhook(
        name=webhook_name(w.app_id, w.webhook_id), url=w.url, event_types=w.event_types,
        ordered=w.ordered,
        state=res.Webhook.STATE_ACTIVE if w.active else res.Webhook.STATE_PAUSED,
        description=w.description, secret_hint=w.secret_hint,
        previous_secret_expire_time=timestamp(
            w.previous_secret_expire_time if w.previous_secret else None),
        create_time=timestamp(w.create_time), update_time=timestamp(w.update_time))


def attempt_proto(a: DeliveryAttempt) -> res.DeliveryAttempt:
    return res.DeliveryAttempt(
        name=f"{webhook_name(a.app_id, a.webhook_id)}/attempts/{a.attempt_id}", event=a.event,
        event_type=a.event_type, attempt_number=a.attempt_number, succeeded=a.succeeded,
        status_code=a.status_code, error=a.error, latency_ms=a.latency_ms,
        response_excerpt=a.response_excerpt, create_time=timestamp(a.create_time))


def dead_letter_proto(d: DeadLetter) -> res.DeadLetter:
    return res.DeadLetter(
        name=f"{webhook_name(d.app_id, d.webhook_id)}/deadLetters/{d.dead_letter_id}",
        event=d.event, event_type=d.event_type, attempts=d.attempts, last_error=d.last_error,
        create_time=timestamp(d.create_time))


def active(state: int, field: str = "webhook.state") -> bool:
    if state == res.Webhook.STATE_UNSPECIFIED:
        raise invalid_field(field, "must be STATE_ACTIVE or STATE_PAUSED")
    return state == res.Webhook.STATE_ACTIVE


class WebhooksServicer:
    def __init__(self, actions: WebhooksActions) -> None:
        self._actions = actions

    async def CreateWebhook(self, request: pb.CreateWebhookRequest, call: Call
                            ) -> pb.CreateWebhookResponse:
        hook = request.webhook
        webhook, secret = await self._actions.do_create(
            call.principal, parse_app(request.parent, "parent"), hook.url,
            tuple(hook.event_types), hook.ordered,
            hook.state != res.Webhook.STATE_PAUSED, hook.description)
        return pb.CreateWebhookResponse(webhook=webhook_proto(webhook), secret=secret)

    async def GetWebhook(self, request: pb.GetWebhookRequest, call: Call
                         ) -> pb.GetWebhookResponse:
        webhook = await self._actions.get(call.principal, *parse_webhook(request.name))
        return pb.GetWebhookResponse(webhook=webhook_proto(webhook))

    async def ListWebhooks(self, request: pb.ListWebhooksRequest, call: Call
                           ) -> pb.ListWebhooksResponse:
        page = await self._actions.list(call.principal, parse_app(request.parent, "parent"),
                                        request.page_size, request.page_token)
        return pb.ListWebhooksResponse(webhooks=[webhook_proto(w) for w in page.items],
                                       next_page_token=page.next_page_token)

    async def UpdateWebhook(self, request: pb.UpdateWebhookRequest, call: Call
                            ) -> pb.UpdateWebhookResponse:
        hook = request.webhook
        paths = set(request.update_mask.paths)
        changes = WebhookChanges(
            url=hook.url if "url" in paths else None,
            event_types=tuple(hook.event_types) if "event_types" in paths else None,
            ordered=hook.ordered if "ordered" in paths else None,
            active=active(hook.state) if "state" in paths else None,
            description=hook.description if "description" in paths else None)
        webhook = await self._actions.do_update(
            call.principal, *parse_webhook(hook.name, "webhook.name"), changes)
        return pb.UpdateWebhookResponse(webhook=webhook_proto(webhook))

    async def DeleteWebhook(self, request: pb.DeleteWebhookRequest, call: Call
                            ) -> pb.DeleteWebhookResponse:
        await self._actions.do_delete(call.principal, *parse_webhook(request.name))
        return pb.DeleteWebhookResponse()

    async def RotateWebhookSecret(self, request: pb.RotateWebhookSecretRequest, call: Call
                                  ) -> pb.RotateWebhookSecretResponse:
        webhook, secret = await self._actions.do_rotate_secret(
            call.principal, *parse_webhook(request.name),
            duration_or_none(request, "previous_secret_ttl"))
        return pb.RotateWebhookSecretResponse(webhook=webhook_proto(webhook), secret=secret)

    async def ListDeliveryAttempts(self, request: pb.ListDeliveryAttemptsRequest, call: Call
                                   ) -> pb.ListDeliveryAttemptsResponse:
        page = await self._actions.list_attempts(
            call.principal, *parse_webhook(request.parent, "parent"), request.event,
            request.page_size, request.page_token)
        return pb.ListDeliveryAttemptsResponse(
            delivery_attempts=[attempt_proto(a) for a in page.items],
            next_page_token=page.next_page_token)

    async def ListDeadLetters(self, request: pb.ListDeadLettersRequest, call: Call
                              ) -> pb.ListDeadLettersResponse:
        page = await self._actions.list_dead_letters(
            call.principal, *parse_webhook(request.parent, "parent"), request.page_size,
            request.page_token)
        return pb.ListDeadLettersResponse(dead_letters=[dead_letter_proto(d) for d in page.items],
                                          next_page_token=page.next_page_token)

    async def ReplayDeadLetters(self, request: pb.ReplayDeadLettersRequest, call: Call
                                ) -> pb.ReplayDeadLettersResponse:
        app_id, webhook_id = parse_webhook(request.parent, "parent")
        ids = parse_children(request.names, parse_dead_letter, (app_id, webhook_id),
                             "a dead letter of the parent endpoint") if request.names else None
        replayed = await self._actions.do_replay(call.principal, app_id, webhook_id, ids)
        return pb.ReplayDeadLettersResponse(replayed=replayed)
