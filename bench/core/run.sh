#!/usr/bin/env bash
# One command for the core benchmarks: set up, install the baselines (snakemake, cwltool), run.
# Usage: bash bench/core/run.sh [array|chain|rss|tools ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
missing=()
for p in snakemake cwltool; do command -v $p >/dev/null || missing+=($p); done
[ -x /usr/bin/time ] || missing+=(time)
if ((${#missing[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
exec node dist/bench/core/run.js "$@"
