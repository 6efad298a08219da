#!/usr/bin/env bash
# Set up (idempotent) and run an example workflow on the embedded default:
# SQLite under $WARREN_HOME, an in-process local agent, no server to start.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/warren.js run "${1:-examples/fan-out-fan-in.yaml}"
