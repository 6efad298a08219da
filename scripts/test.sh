#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up (Debian packages, npm, build), make sure
# the services the integration tests use are running, then run every test with Node's
# built-in runner. Usage: scripts/test.sh [test-file-glob...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# PostgreSQL for the store contract tests: the one on loopback when it runs (started if
# stopped); on a fresh Debian machine (scripts/apt/core.txt installs the server), a role for
# this user over the local socket (peer authentication).
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 1 50); do pg_isready -q 2>/dev/null && break; sleep 0.2; done
fi
if [[ -z "${WARREN_TEST_PG:-}" ]]; then
  if psql "postgres://postgres@127.0.0.1:5432/postgres" -qAtc 'select 1' >/dev/null 2>&1; then
    export WARREN_TEST_PG="postgres://postgres@127.0.0.1:5432/postgres"
  else
    me=$(id -un)
    runuser -u postgres -- psql -qAt -c "SELECT 1 FROM pg_roles WHERE rolname='$me'" 2>/dev/null | grep -q 1 \
      || runuser -u postgres -- psql -q -c "CREATE ROLE \"$me\" SUPERUSER LOGIN" >/dev/null
    export WARREN_TEST_PG="postgres:///postgres?host=/var/run/postgresql" PGUSER="$me"
  fi
fi

export WARREN_TEST=1
if (($#)); then files=("$@"); else mapfile -t files < <(find dist/test -name '*.test.js' | sort); fi
# One file at a time per core; each test file bounds its own time.
exec node --test --test-concurrency="${WARREN_TEST_CONCURRENCY:-2}" --test-timeout=300000 "${files[@]}"
