"""Configurable member limits, in-process on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.conversations.actions import NewConversation
from services.conversations.models import Kind
from services.core.errors import FailedPrecondition
from services.core.principal import Operator, User
from services.core.settings import load_settings
from services.runtime import build_runtime


async def test_groups_stop_at_the_configured_size(tmp_path: Path) -> None:
    runtime = await build_runtime(load_settings(
        data_dir=tmp_path, operator_token="caaso_" + "t" * 40, max_group_members=3))
    try:
        await runtime.apps.do_create_app(Operator(), "alpha", "Alpha", "")
        for user_id in ("a", "b", "c", "d", "e"):
            await runtime.users.ensure_user("alpha", user_id)
        owner = User("alpha", "a", "s")
        with pytest.raises(FailedPrecondition) as too_big:
            await runtime.conversations.do_create(
                owner, "alpha", NewConversation(Kind.GROUP, member_ids=["b", "c", "d"]))
        assert too_big.value.reason == "LIMIT_EXCEEDED"
        group, _ = await runtime.conversations.do_create(
            owner, "alpha", NewConversation(Kind.GROUP, member_ids=["b"]))
        await runtime.conversations.do_add_members(owner, "alpha", group.conversation_id, ["c"])
        with pytest.raises(FailedPrecondition) as full:
            await runtime.conversations.do_add_members(owner, "alpha", group.conversation_id,
                                                       ["d", "e"])
        assert full.value.reason == "LIMIT_EXCEEDED"
        members = await runtime.conversations.list_members(owner, "alpha",
                                                           group.conversation_id, 10, "")
        assert [m.user_id for m in members.items] == ["a", "b", "c"]  # nothing half-added
    finally:
        await runtime.close()
