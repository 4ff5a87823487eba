"""Deleting an app (AppsService.DeleteApp): its credentials are refused at once; an
operation waits out the grace period (`grace`), then erases every record of the app
from every table or collection of the store (`purge`: those with its app id, the
operation's own record kept as the receipt), its search documents, its media bytes and
data exports, and compacts the files (`compact`). UndeleteApp within the grace makes
the operation end, cancelled, when its grace would have ended.

Left where they are: events already relayed to Kafka (the topics' retention ends
them), rate-limit and presence keys in Redis (they expire within minutes), and
backups (a data key of the app is erased with it, so what was sealed with it stays
unreadable there).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.apps.store import AppStore
from services.compliance.operations import Cancelled, Deferred, Operation
from services.core.clock import Clock
from services.media.blobs import BlobStore
from services.search.index import Scan, SearchIndex

KEEP = frozenset({"operations"})  # the deletion's own record: the operator's receipt
EVERY_POSITION = 2**62


class AppDeleter:
    steps: tuple[str, ...] = ("grace", "purge", "compact")

    def __init__(self, apps: AppStore, purge: Callable[[str, frozenset[str]], Awaitable[int]],
                 index: SearchIndex, blobs: BlobStore,
                 compact: Callable[[], Awaitable[object]], clock: Clock) -> None:
        self._apps = apps
        self._purge = purge
        self._index = index
        self._blobs = blobs
        self._compact = compact
        self._clock = clock

    async def step(self, stage: str, op: Operation) -> dict[str, int]:
        app_id = op.app_id
        if stage == "grace":
            app = await self._apps.get_app(app_id)
            if app is not None and (app.delete_time is None or app.purge_time is None):
                raise Cancelled
            if app is not None and app.purge_time is not None \
                    and app.purge_time > self._clock.now():
                raise Deferred(app.purge_time)
            return {}
        if stage == "purge":
            erased = await self._purge(app_id, KEEP)
            await self._index.sweep(Scan(app_id, EVERY_POSITION))
            for prefix in (f"{app_id}/", f"exports/{app_id}/"):
                await self._blobs.delete_prefix(prefix)
            return {"records_erased": erased}
        await self._compact()
        await self._index.compact()
        return {}
