#!/usr/bin/env bash
# Idempotent setup on a fresh Debian 12 with Node 20, as root (or with sudo):
# installs the Debian packages listed in scripts/apt/*.txt that are missing, the npm
# dependencies, and builds the TypeScript sources into dist/.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for f in scripts/apt/*.txt; do
  while read -r pkg _; do
    [[ -z "$pkg" || "$pkg" == \#* ]] && continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
  done < "$f"
done
if ((${#need[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "setup: installing Debian packages: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# npm dependencies: only when package.json or the lock file changed since the last install.
stamp=node_modules/.warren-install-stamp
sum=$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || "$(cat $stamp)" != "$sum" ]]; then
  echo "setup: installing npm dependencies" >&2
  npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1 || npm install --no-audit --no-fund --loglevel=error
  # npm >= 11 skips install scripts not approved in package.json "allowScripts"; older npm runs them.
  node -e "require('better-sqlite3')" 2>/dev/null || npm rebuild better-sqlite3 >/dev/null
  echo "$sum" > $stamp
fi

# Build only when a source changed since the last build.
build_stamp=dist/.build-stamp
if [[ ! -f $build_stamp ]] || [[ -n "$(find src test bench tsconfig.json package.json -newer $build_stamp -print -quit 2>/dev/null)" ]]; then
  echo "setup: building" >&2
  npx tsc -p tsconfig.json
  touch $build_stamp
fi
# The small process launcher of the process runtime (src/runtime/spawner.ts).
mkdir -p dist/bin
if [[ ! -x dist/bin/warren-spawn || src/runtime/spawner/warren-spawn.c -nt dist/bin/warren-spawn ]]; then
  cc -O2 -Wall -o dist/bin/warren-spawn src/runtime/spawner/warren-spawn.c
fi
# The launch helper of multinode (MPI) jobs (src/agent/mpi.ts): static, it runs inside any image.
if [[ ! -x dist/bin/warren-mpi || src/agent/mpi/warren-mpi.c -nt dist/bin/warren-mpi ]]; then
  cc -O2 -Wall -static -o dist/bin/warren-mpi src/agent/mpi/warren-mpi.c
fi
# The first process of ad-hoc containers (src/runtime/container/adhoc.ts): static, it runs inside any image.
if [[ ! -x dist/bin/warren-userid || src/runtime/container/warren-userid.c -nt dist/bin/warren-userid ]]; then
  cc -O2 -Wall -static -o dist/bin/warren-userid src/runtime/container/warren-userid.c
fi
