"""A stream reader in a process of its own, for tests that freeze it (SIGSTOP).

    python -m tests.support.stream_reader ADDRESS USER_NAME ACCESS_TOKEN

prints one line per item: `<kind> <resume token> <message text>`, then
`status <code> <reason>` when the stream ends with an error.
"""

from __future__ import annotations

import asyncio
import sys

import grpc
from caas.realtime.v1 import realtime_service_pb2 as rt_pb
from caas.realtime.v1 import realtime_service_pb2_grpc as rt_grpc

from tests.support.client import bearer, details
from tests.support.stream import expand


async def read(address: str, name: str, token: str) -> None:
    # No BDP probing: the receive window stays small, as on a slow mobile link.
    async with grpc.aio.insecure_channel(address,
                                         options=[("grpc.http2.bdp_probe", 0)]) as channel:
        call = rt_grpc.RealtimeServiceStub(channel).Subscribe(
            rt_pb.SubscribeRequest(name=name), metadata=bearer(token))
        try:
            async for batch in call:
                for item in expand(batch):
                    print(item.WhichOneof("item"), item.resume_token or "-",
                          item.event.message_created.text, flush=True)
        except grpc.aio.AioRpcError as error:
            print("status", error.code().name, details(error).reason, flush=True)


if __name__ == "__main__":
    asyncio.run(read(*sys.argv[1:4]))
