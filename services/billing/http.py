"""Billing's HTTP routes, on the server's HTTP port (beside media; Envoy routes
`/billing/v1/` there):

- `POST /billing/v1/stripe/webhook`: Stripe's events, their signature checked with
  `CAAS_STRIPE_WEBHOOK_SECRET` (400 otherwise), each applied once (a replay is
  answered 200 and changes nothing);
- `GET /billing/v1/invoices/{invoice}.pdf`: an invoice's PDF, by the signed,
  short-lived link that GetInvoice answers (`pdf_uri`).
"""

from __future__ import annotations

import logging

from aiohttp import web

from services.billing.collection import Collector
from services.billing.payments import (
    Charge,
    InvalidSignature,
    PaymentProvider,
    ProviderEvent,
)
from services.billing.store import FAILED, REQUIRES_ACTION, SUCCEEDED, BillingStore
from services.core.clock import Clock
from services.core.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from services.media.blobs import BlobStore
from services.media.delivery import MediaUrls
from services.media.http import error_response
from services.media.urls import Verdict

log = logging.getLogger("caas.billing")

WEBHOOK_PATH = "/billing/v1/stripe/webhook"
INVOICES_PATH = "/billing/v1/invoices"
MAX_WEBHOOK_BYTES = 256 * 1024
OUTCOMES = {"payment_intent.succeeded": SUCCEEDED, "payment_intent.payment_failed": FAILED,
            "payment_intent.requires_action": REQUIRES_ACTION}


class InvoiceLinks:
    """Signed links to invoice PDFs (the deployment's URL signer, as media's)."""

    def __init__(self, urls: MediaUrls, clock: Clock, ttl: float) -> None:
        self._urls = urls
        self._clock = clock
        self._ttl = ttl

    def link(self, invoice_id: str) -> str:
        signer = self._urls.signer
        expires = signer.expiry(self._clock.now().timestamp(), self._ttl)
        return signer.sign(f"{INVOICES_PATH}/{invoice_id}.pdf", expires)

    def verify(self, request: web.Request) -> Verdict:
        params = {name: request.query[name] for name in request.query}
        if len(params) != len(request.query):
            return Verdict.INVALID
        return self._urls.signer.verify(request.rel_url.raw_path, params,
                                        self._clock.now().timestamp())


class BillingRoutes:
    def __init__(self, store: BillingStore, collector: Collector,
                 provider: PaymentProvider | None, blobs: BlobStore, links: InvoiceLinks,
                 clock: Clock) -> None:
        self._store = store
        self._collector = collector
        self._provider = provider
        self._blobs = blobs
        self._links = links
        self._clock = clock

    def add_to(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self._webhook)
        app.router.add_get(INVOICES_PATH + "/{invoice}.pdf", self._pdf)

    async def _webhook(self, request: web.Request) -> web.Response:
        if self._provider is None:
            return error_response(404, NotFound("RESOURCE_NOT_FOUND",
                                                "this deployment takes no card payments"))
        too_large = ResourceExhausted("REQUEST_TOO_LARGE", "the body is too large")
        if (request.content_length or 0) > MAX_WEBHOOK_BYTES:  # said up front
            return error_response(413, too_large)
        body = await request.content.read(MAX_WEBHOOK_BYTES + 1)
        if len(body) > MAX_WEBHOOK_BYTES:  # or found reading
            return error_response(413, too_large)
        try:
            event = self._provider.parse_webhook(body, request.headers.get("Stripe-Signature",
                                                                           ""))
        except InvalidSignature:
            return error_response(400, InvalidArgument(
                "STRIPE_WEBHOOK_SIGNATURE_INVALID",
                "the Stripe-Signature header does not verify (secret or age)"))
        await self.apply(event)
        return web.json_response({"received": True})

    async def apply(self, event: ProviderEvent) -> bool:
        """Apply a verified event once; whether it was new. Payment outcomes settle the
        attempt their metadata names; other types are recorded and ignored."""
        if not await self._store.record_provider_event(event.event_id, event.type,
                                                       self._clock.now()):
            return False
        outcome = OUTCOMES.get(event.type)
        op_key = event.metadata.get("caas_op", "")
        if outcome is not None and op_key and await self._store.get_payment(op_key):
            await self._collector.settle(op_key, Charge(outcome, event.object_id,
                                                        event.decline_code))
        log.info("stripe event", extra={"event": event.event_id, "type": event.type})
        return True

    async def _pdf(self, request: web.Request) -> web.StreamResponse:
        verdict = self._links.verify(request)
        if verdict is Verdict.EXPIRED:
            return error_response(403, PermissionDenied(
                "URL_EXPIRED", "the link has expired: get the invoice again for a new one"))
        if verdict is not Verdict.VALID:
            return error_response(403, PermissionDenied(
                "URL_SIGNATURE_INVALID", "the URL is not one this server signed"))
        invoice = await self._store.get_invoice(request.match_info["invoice"])
        if invoice is None or not invoice.pdf_key:
            return error_response(404, NotFound("RESOURCE_NOT_FOUND", "no such invoice"))
        blob = await self._blobs.open(invoice.pdf_key)
        data = b"".join([chunk async for chunk in blob.chunks])
        name = f"{invoice.display_number}.pdf"
        return web.Response(body=data, headers={
            "content-type": "application/pdf",
            "content-disposition": f'attachment; filename="{name}"',
            "cache-control": "private, no-store", "x-content-type-options": "nosniff"})
