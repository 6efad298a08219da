#!/usr/bin/env bash
# One command per benchmark: set up, install the baselines it compares against, run it.
#   bash bench/run.sh core|million|planner|workflow|image-pull|sif-verify|container-start|exec|scheduler|cluster|mpi|metrics|prune|build|provision|nodebuild|provision-boot [args...]
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:-}"; shift || true
case "$name" in
  core|million|planner|workflow|image-pull|sif-verify|container-start|exec|scheduler|cluster|mpi|metrics|prune|build|provision|nodebuild|provision-boot) ;;
  *) echo "usage: bash bench/run.sh core|million|planner|workflow|image-pull|sif-verify|container-start|exec|scheduler|cluster|mpi|metrics|prune|build|provision|nodebuild|provision-boot [args...]" >&2; exit 2 ;;
esac
bash scripts/setup.sh
need=()
while read -r pkg _; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done < bench/apt.txt
if ((${#need[@]})); then
  echo "bench: installing baselines: ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The boot service bench is bench/provision/serve.ts (the issue names it so).
if [[ "$name" == provision ]]; then exec node dist/bench/provision/serve.js "$@"; fi
# Provisioning benches live under bench/provision/.
[[ "$name" == nodebuild ]] && exec node dist/bench/provision/nodebuild.js "$@"
[[ "$name" == provision-boot ]] && exec node dist/bench/provision-boot/run.js "$@"
exec node "dist/bench/$name/run.js" "$@"
