"""The browser side: what apps ship, and how the UI kit renders a long conversation.

    .venv/bin/python bench/web_kit.py [--runs 5]

- Bundle sizes, minified and gzipped (web_bridge/scripts/bundle-sizes.mjs): the SDK
  core (ChatClient, every service client, a gRPC-Web transport) with the full and the
  slim generated descriptors; the React kit alone (React and the SDK left out) and its
  stylesheet; the widget: what a page loads at first, what opening the panel adds; the
  React example app, React included.
- The kit gallery's 10,000-message story in Debian's Chromium (headless), under React
  and under Preact's compat layer (the widget's): time from navigation to the first
  message painted (p50 and max over RUNS loads, the 10,000 fixture messages built in the
  page included), and the message rows and DOM elements present at the bottom and after
  a jump into the middle.

Needs `npm run build` and the gallery built (`npm run check` in web_bridge does both).
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.async_api import async_playwright

from tests.browser.conftest import serving

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "web_bridge"
STORY = "message-list--ten-thousand-messages"


def kib(size: int) -> str:
    return f"{size / 1024:.1f} KiB"


def sizes() -> None:
    node = shutil.which("node", path=str(REPO / ".venv/bin")) or "node"
    found = json.loads(subprocess.run([node, "scripts/bundle-sizes.mjs"], cwd=WEB, check=True,
                                      capture_output=True, text=True).stdout)
    print("bundle sizes (gzipped; minified)")
    for name, label in (("sdkCore", "SDK core, full descriptors"),
                        ("sdkCoreSlim", "SDK core, slim descriptors"),
                        ("reactKit", "React hooks + kit + panes (no React, no SDK)")):
        print(f"  {label:46} {kib(found[name]['gzipped']):>10}  {kib(found[name]['minified'])}")
    print(f"  {'kit stylesheet':46} {kib(found['kitCss']['gzipped']):>10}")
    widget = found["widget"]
    print(f"  {'widget, loaded with the page':46} {kib(widget['initialGzipBytes']):>10}")
    on_demand = "widget, loaded on demand (panel, guests, ar)"
    print(f"  {on_demand:46} {kib(widget['panelGzipBytes']):>10}")
    print(f"  {'widget, in all':46} {kib(widget['totalGzipBytes']):>10}")
    print(f"  {'React example app (React included)':46} "
          f"{kib(found['reactExample']['gzipBytes']):>10}")


async def rendering(runs: int) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is not installed"
    with serving(WEB / "react/gallery/dist") as origin:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium,
                                                       args=["--no-sandbox"])
            print(f"\n10,000 messages in the kit's MessageList (Chromium, {runs} loads each)")
            for html, runtime in (("index.html", "React 19"), ("preact.html", "Preact compat")):
                times = []
                for _ in range(runs):
                    context = await browser.new_context(viewport={"width": 1280, "height": 860})
                    page = await context.new_page()
                    await page.goto(f"{origin}/{html}#/")
                    await page.wait_for_selector(".caas-root")
                    started = await page.evaluate("performance.now()")
                    await page.evaluate(f"location.hash = '#/{STORY}'")
                    await page.wait_for_function(
                        "document.querySelectorAll('[role=log] .caas-message').length > 5")
                    painted = await page.evaluate(
                        "new Promise((done) => requestAnimationFrame(() => "
                        "requestAnimationFrame(() => done(performance.now()))))")
                    times.append(painted - started)
                    rows = await page.evaluate("document.querySelectorAll('.caas-message').length")
                    elements = await page.evaluate("document.querySelectorAll('*').length")
                    await page.get_by_role("log").evaluate(
                        "(el) => { el.scrollTop = el.scrollHeight / 2; }")
                    await page.wait_for_timeout(100)  # a benchmark: let the frame settle
                    middle = await page.evaluate(
                        "document.querySelectorAll('.caas-message').length")
                    await context.close()
                print(f"  {runtime:14} render p50 {statistics.median(times):6.0f} ms, "
                      f"max {max(times):6.0f} ms; message rows {rows} at the bottom, "
                      f"{middle} in the middle; {elements} DOM elements in all")
            await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    sizes()
    asyncio.run(rendering(arguments.runs))


if __name__ == "__main__":
    main()
