#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install CAAS into it, pinned by constraints.txt.
#   scripts/bootstrap.sh        the server
#   scripts/bootstrap.sh dev    the server, and what generation, checks and tests need
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(command -v python3.11 || command -v python3)
"$python" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"CAAS needs Python 3.11 or newer, found {sys.version.split()[0]}")
PY
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
target="."
[[ "${1:-}" == "dev" ]] && target=".[dev]"
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e "$target"
