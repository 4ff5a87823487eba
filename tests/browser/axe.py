"""Screenshots and axe-core accessibility checks of pages under test."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.async_api import Page

from tests.support.servers import REPO

AXE = REPO / "web_bridge/node_modules/axe-core/axe.min.js"
ARTIFACTS = REPO / "test-artifacts"


async def checked(page: Page, name: str, shots: Path, within: str = "") -> None:
    """Save a screenshot of the page in `shots`, and fail on any serious or critical
    accessibility violation (axe-core looks into open shadow roots too): of the whole
    page, or of the element `within` selects (e.g. a widget on someone else's page)."""
    shots.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, tiny)
    await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    found = await page.evaluate("""async (within) => {
        const context = within ? {include: [[within]]} : document;
        const result = await axe.run(context, {resultTypes: ['violations']});
        return result.violations
          .filter((v) => v.impact === 'serious' || v.impact === 'critical')
          .map((v) => ({id: v.id, help: v.help, nodes: v.nodes.map((n) => n.target.join(' '))}));
    }""", within)
    assert found == [], f"{name}: {json.dumps(found, indent=1)}"
