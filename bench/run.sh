#!/usr/bin/env bash
# One command per benchmark: set up, install the baselines it compares against, run it.
#   bash bench/run.sh core|million|planner|replan|workflow|image-pull|sif-verify|container-start|exec|scheduler|cluster|mpi|metrics|prune|build|provision|nodebuild|sites|provision-boot [args...]
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:-}"; shift || true
case "$name" in
  core|million|planner|replan|workflow|image-pull|sif-verify|container-start|exec|scheduler|cluster|mpi|metrics|prune|build|provision|nodebuild|sites|provision-boot) ;;
  *) echo "usage: bash bench/run.sh core|million|planner|replan|workflow|image-pull|sif-verify|container-start|exec|scheduler|cluster|mpi|metrics|prune|build|provision|nodebuild|sites|provision-boot [args...]" >&2; exit 2 ;;
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
# Provisioning benches live under bench/provision/: the boot service (serve.ts) and node-build (nodebuild.ts).
if [[ "$name" == provision ]]; then exec node dist/bench/provision/serve.js "$@"; fi
[[ "$name" == nodebuild ]] && exec node dist/bench/provision/nodebuild.js "$@"
exec node "dist/bench/$name/run.js" "$@"
