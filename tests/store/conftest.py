"""The store contract suite runs against every engine: SQLite and MongoDB."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.core.settings import Settings
from services.runtime import Stores, open_stores
from tests.support.servers import ExternalServer


@pytest.fixture(params=["sqlite", "mongodb"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    """Fresh, migrated stores on each engine."""
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path)
    else:
        mongo: ExternalServer = request.getfixturevalue("mongo")
        settings = Settings(store="mongodb", mongodb_url=mongo.url,
                            mongodb_database=f"t{uuid.uuid4().hex[:12]}")
    opened = await open_stores(settings)
    yield opened
    await opened.close()
