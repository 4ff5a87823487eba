"""A real browser (Debian's Chromium, driven by Playwright) and the demo page, served
from its own origin so that every call crosses Envoy's CORS policy."""

from __future__ import annotations

import contextlib
import functools
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.servers import REPO

DEMO = REPO / "web_bridge/demo"
REACT_EXAMPLE = REPO / "web_bridge/react/example"


@contextlib.contextmanager
def serving(directory: Path) -> Iterator[str]:
    """`directory` over HTTP on a free port of its own: its origin."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def demo_origin() -> Iterator[str]:
    """The demo page's directory over HTTP on a free port: its origin."""
    index = DEMO / "index.html"
    assert index.exists(), "web_bridge/demo is missing"
    bundle = DEMO / "dist"
    assert bundle.exists(), ("the demo page is not built: run `npm ci && npm run build:demo` "
                             "in web_bridge (scripts/test.sh does)")
    with serving(DEMO) as origin:
        yield origin


@pytest.fixture(scope="session")
def react_example_origin() -> Iterator[str]:
    """The React example app (web_bridge/react/example, built) on an origin of its own."""
    built = REACT_EXAMPLE / "dist"
    assert (built / "index.html").exists(), (
        "the React example is not built: run `npm run check` in web_bridge "
        "(scripts/test.sh does)")
    with serving(built) as origin:
        yield origin


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
