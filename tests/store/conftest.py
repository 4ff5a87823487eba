"""The store contract suite runs against every engine: SQLite and MongoDB."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.core.settings import Settings
from services.runtime import Stores, open_stores
from tests.support.servers import ExternalServer


def engine_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for a fresh store on the engine `request.param` (sqlite, mongodb)."""
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path)
    mongo: ExternalServer = request.getfixturevalue("mongo")
    return Settings(store="mongodb", mongodb_url=mongo.url,
                    mongodb_database=f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "mongodb"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    """Fresh, migrated stores on each engine."""
    opened = await open_stores(engine_settings(request, tmp_path))
    yield opened
    await opened.close()
