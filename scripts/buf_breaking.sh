#!/usr/bin/env bash
# Contracts evolve safely: the working tree against main, and HEAD against its parent
# (so a breaking change committed to main is caught on main itself).
set -euo pipefail
cd "$(dirname "$0")/.."
if git rev-parse --verify -q main >/dev/null; then
  buf breaking --against '.git#branch=main'
fi
if git rev-parse --verify -q HEAD~1 >/dev/null; then
  buf breaking --against '.git#ref=HEAD~1'
else
  echo "buf breaking: no parent commit to compare with (first commit or shallow clone)"
fi
