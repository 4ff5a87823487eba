"""Push messages handed to a page's real service worker through the DevTools protocol,
as a browser's push service would (headless Chromium has none of its own)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from playwright.async_api import Page

from tests.support.waiting import eventually

# Gives the worker one push message's plaintext; returns once its push event is done.
Deliver = Callable[[bytes], Awaitable[None]]

# What the service worker's registration shows, as the page sees it.
NOTIFICATIONS = """async () => {
  const shown = await (await navigator.serviceWorker.ready).getNotifications();
  return shown.map((n) => ({title: n.title, body: n.body, tag: n.tag, data: n.data,
                            renotify: n.renotify, requireInteraction: n.requireInteraction,
                            silent: n.silent}));
}"""


async def notifications(page: Page) -> list[dict[str, Any]]:
    """The notifications the service worker's registration shows. Read only when no
    notification is being shown: Chromium's `getNotifications()` drops from its store
    one still on its way to the screen when it is called (it keeps what the platform
    reports displayed, and what is newer than the call)."""
    shown: list[dict[str, Any]] = await page.evaluate(NOTIFICATIONS)
    return shown


async def devtools_push(page: Page, origin: str) -> Deliver:
    """A function handing a push message to the worker of `origin`'s root scope, once
    the worker is done with it: DevTools' log of background services says when
    ("Push event completed", its waitUntil settled)."""
    cdp = await page.context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated",
           lambda event: registrations.extend(event["registrations"]))
    completed: asyncio.Queue[str] = asyncio.Queue()

    def logged(event: dict[str, Any]) -> None:
        entry = event["backgroundServiceEvent"]
        if entry["eventName"] == "Push event completed":
            completed.put_nowait({m["key"]: m["value"]
                                  for m in entry["eventMetadata"]}.get("Status", ""))

    cdp.on("BackgroundService.backgroundServiceEventReceived", logged)
    await cdp.send("BackgroundService.startObserving", {"service": "pushMessaging"})
    await cdp.send("BackgroundService.setRecording",
                   {"shouldRecord": True, "service": "pushMessaging"})
    await cdp.send("ServiceWorker.enable")

    def live() -> list[dict[str, Any]]:
        return [r for r in registrations if r["scopeURL"] == f"{origin}/" and not r["isDeleted"]]

    async def registered() -> bool:
        return bool(live())

    await eventually(registered)
    registration = live()[0]["registrationId"]

    async def deliver(payload: bytes) -> None:
        await cdp.send("ServiceWorker.deliverPushMessage", {
            "origin": origin, "registrationId": registration, "data": payload.decode()})
        assert await asyncio.wait_for(completed.get(), 10) == "Success"

    return deliver
