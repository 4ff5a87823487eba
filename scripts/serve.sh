#!/usr/bin/env bash
# Install CAAS and run the server on embedded defaults (SQLite in ./caas-data, no
# external servers). Arguments go to `caas serve` (see `caas serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/caas serve "$@"
