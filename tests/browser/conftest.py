"""A real browser (Debian's Chromium, driven by Playwright) and the demo page, served
from its own origin so that every call crosses Envoy's CORS policy."""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.servers import REPO

DEMO = REPO / "web_bridge/demo"


@pytest.fixture(scope="session")
def demo_origin() -> Iterator[str]:
    """The demo page's directory over HTTP on a free port: its origin."""
    index = DEMO / "index.html"
    assert index.exists(), "web_bridge/demo is missing"
    bundle = DEMO / "dist"
    assert bundle.exists(), ("the demo page is not built: run `npm ci && npm run build:demo` "
                             "in web_bridge (scripts/test.sh does)")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(DEMO)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def chromium() -> str:
    path = shutil.which("chromium")
    assert path is not None, "Chromium is not installed: scripts/test.sh installs it"
    return path


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(),
                                                   args=["--no-sandbox"])
        yield browser
        await browser.close()
