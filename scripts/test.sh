#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up (Debian packages, npm, build), make sure
# the services the integration tests use are running, then run every test with Node's
# built-in runner. Usage: scripts/test.sh [test-file-glob...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# PostgreSQL on loopback for the store contract tests (Debian's cluster, started if stopped).
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi

export WARREN_TEST=1
if (($#)); then files=("$@"); else mapfile -t files < <(find dist/test -name '*.test.js' | sort); fi
# One file at a time per core; each test file bounds its own time.
exec node --test --test-concurrency="${WARREN_TEST_CONCURRENCY:-2}" --test-timeout=300000 "${files[@]}"
