"""A user's open streams are counted while they run, and only then."""

from __future__ import annotations

import pytest

from services.core.errors import FailedPrecondition
from services.core.principal import User
from services.runtime import Runtime


async def test_a_closed_stream_frees_its_place(runtime: Runtime) -> None:
    alice = User("alpha", "alice", "s1")
    limit = runtime.settings.max_streams_per_user
    streams = [runtime.realtime.subscribe(alice, "alpha", "alice", "", "") for _ in range(limit)]
    for stream in streams:
        assert await anext(stream)  # `ready`: the stream is open
    extra = runtime.realtime.subscribe(alice, "alpha", "alice", "", "")
    with pytest.raises(FailedPrecondition) as refused:
        await anext(extra)
    assert refused.value.reason == "LIMIT_EXCEEDED"
    await streams.pop().aclose()
    again = runtime.realtime.subscribe(alice, "alpha", "alice", "", "")
    assert await anext(again)
    for stream in [*streams, again]:
        await stream.aclose()
    # A refused stream took no place either: all of them can open again.
    reopened = [runtime.realtime.subscribe(alice, "alpha", "alice", "", "")
                for _ in range(limit)]
    for stream in reopened:
        assert await anext(stream)
        await stream.aclose()
