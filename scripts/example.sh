#!/usr/bin/env bash
# Set up (idempotent) and run an example workflow on the embedded default: SQLite under
# $WARREN_HOME, an in-process local agent, no server to start. By default the data
# pipeline: ingress (checksum verified) -> clean -> stats -> egress, then its result.
# Usage: scripts/example.sh [WORKFLOW.yaml]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
flow="${1:-examples/data-pipeline.yaml}"
set +e
node bin/warren.js run "$flow"
rc=$?
set -e
if [[ $rc -eq 0 && "$flow" == examples/data-pipeline.yaml ]]; then
  echo
  echo "result (egress of the workflow, examples/output/summary.csv):"
  cat examples/output/summary.csv
fi
exit $rc
