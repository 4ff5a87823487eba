"""Reading and checking an app's audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.apps.store import AppStore
from services.audit.models import AuditRecord, Verification, Verifier
from services.audit.store import AuditQuery, AuditStore
from services.core.errors import not_found
from services.core.names import app_name
from services.core.pagination import Page, make_page, ordered_position, page_request
from services.core.principal import Principal, require_backend

SCAN_BATCH = 1000


class AuditActions:
    def __init__(self, store: AuditStore, apps: AppStore) -> None:
        self._store = store
        self._apps = apps

    async def _app(self, principal: Principal, app_id: str) -> None:
        require_backend(principal, app_id, "audit records")
        if await self._apps.get_app(app_id) is None:
            raise not_found("caas.dev/App", app_name(app_id))

    async def list_records(self, principal: Principal, app_id: str, query: AuditQuery,
                           page_size: int, page_token: str) -> Page[AuditRecord]:
        await self._app(principal, app_id)
        scope = [app_id, query.action, query.target, str(query.actor_kind or ""),
                 query.actor_id, query.code, str(query.start_time), str(query.end_time)]
        request = page_request(page_size, page_token, scope)
        position = ordered_position(request, ("time",))
        before = None if position is None else int(position[0])
        records = await self._store.list_records(app_id, query, request.size + 1, before)
        return make_page(records, request, scope, lambda r: (r.sequence,))

    async def verify(self, principal: Principal, app_id: str) -> Verification:
        await self._app(principal, app_id)
        return await verify_chain(self._store, app_id)



async def export(store: AuditStore, app_id: str) -> AsyncIterator[AuditRecord]:
    """Every record of the app, in sequence order (the operator's CLI)."""
    after = 0
    while batch := await store.scan(app_id, after, SCAN_BATCH):
        for record in batch:
            yield record
        after = batch[-1].sequence


async def verify_chain(store: AuditStore, app_id: str) -> Verification:
    """Check the app's whole chain, batch by batch, up to the first break."""
    verifier = Verifier()
    after = 0
    while batch := await store.scan(app_id, after, SCAN_BATCH):
        if not verifier.feed(batch):
            break
        after = batch[-1].sequence
    return verifier.result
