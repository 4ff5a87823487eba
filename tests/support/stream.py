"""A real-time stream as a test reads it: items in arrival order, with timeouts that
only bound a failure (nothing waits for time to pass)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from caas.events.v1 import events_pb2
from caas.realtime.v1 import realtime_service_pb2 as rt_pb

from tests.conftest import create_app
from tests.support.chat import GROUP, Person, person
from tests.support.client import Client

WAIT = 20.0  # seconds before a missing item fails the test


def expand(item: rt_pb.SubscribeResponse) -> list[rt_pb.SubscribeResponse]:
    """A batch as the events it carries, one item each (the batch's resume token goes
    with its last event); any other item as itself."""
    if item.WhichOneof("item") != "events":
        return [item]
    events = list(item.events.events)
    return [rt_pb.SubscribeResponse(
        event=event, resume_token=item.resume_token if n == len(events) - 1 else "")
        for n, event in enumerate(events)]


class Stream:
    """`Subscribe` of one person, read in the background."""

    def __init__(self, person: Person, token: str = "", device_id: str = "") -> None:
        self.person = person
        self.token = token
        self.call: Any = person.client.realtime.Subscribe(
            rt_pb.SubscribeRequest(name=person.name, resume_token=token, device_id=device_id),
            metadata=person.auth)
        self._items: asyncio.Queue[rt_pb.SubscribeResponse | grpc.aio.AioRpcError] = (
            asyncio.Queue())
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for item in self.call:
                for one in expand(item):
                    await self._items.put(one)
        except grpc.aio.AioRpcError as error:
            await self._items.put(error)

    async def next(self, *kinds: str) -> rt_pb.SubscribeResponse:
        """The next item of one of `kinds` (default: anything but heartbeats)."""
        wanted = kinds or ("event", "typing", "presence", "ready")
        while True:
            item = await asyncio.wait_for(self._items.get(), WAIT)
            if isinstance(item, grpc.aio.AioRpcError):
                raise item
            if item.resume_token:
                self.token = item.resume_token
            if item.WhichOneof("item") in wanted:
                return item

    async def event(self) -> events_pb2.Event:
        """The next durable event."""
        return (await self.next("event")).event

    async def events(self, count: int) -> list[events_pb2.Event]:
        return [await self.event() for _ in range(count)]

    async def ready(self) -> list[events_pb2.Event]:
        """The replayed events, up to `ready`."""
        replayed = []
        while (item := await self.next("event", "ready")).WhichOneof("item") == "event":
            replayed.append(item.event)
        return replayed

    async def error(self) -> grpc.aio.AioRpcError:
        """The status the stream ends with (items before it are skipped)."""
        while True:
            item = await asyncio.wait_for(self._items.get(), WAIT)
            if isinstance(item, grpc.aio.AioRpcError):
                return item
            if item.resume_token:
                self.token = item.resume_token

    async def close(self) -> None:
        self.call.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


async def subscribed(person: Person, token: str = "", device_id: str = "") -> Stream:
    """A stream that has delivered `ready` (the replay, if any, is dropped)."""
    stream = Stream(person, token, device_id)
    await stream.ready()
    return stream


async def bob_on_every_connection(clients: list[Client], operator_token: str
                                  ) -> tuple[Person, Person, str, list[Stream]]:
    """A new app where alice and bob share a group, and a stream of bob's on each of
    `clients` (each its own connection, so they spread over the workers): (alice,
    bob, the group's name, the streams)."""
    app = await create_app(clients[0], operator_token)
    alice = await person(clients[0], app.app_id, app.api_key, "alice")
    bob = await person(clients[1], app.app_id, app.api_key, "bob")
    group = await alice.create(GROUP, ("bob",))
    streams = [await subscribed(Person(client, app.app_id, "bob", bob.token))
               for client in clients]
    return alice, bob, group.name, streams
