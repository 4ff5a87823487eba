"""What browsers download stays within its budgets: the chat widget's script, as a host
page loads it (before anyone opens the chat), is at most 60 KiB gzipped. The sizes come
from the build (web_bridge/widget/build.mjs writes dist/build.json); bench/web_kit.py
prints them all."""

from __future__ import annotations

import json

from tests.support.servers import REPO

KIB = 1024


def test_the_widget_loads_at_most_60_kib_with_the_page() -> None:
    built = json.loads((REPO / "web_bridge/widget/dist/build.json").read_text())
    assert built["initialGzipBytes"] <= 60 * KIB, built
    # The rest (the chat panel: the kit, its styles, the SDK's store) comes on opening.
    assert built["totalGzipBytes"] > built["initialGzipBytes"]
