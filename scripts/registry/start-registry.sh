#!/usr/bin/env bash
# Start Debian's docker-registry on loopback for manual testing (the tests and the
# benchmark start their own through test/image/oci/registry.ts).
#   scripts/registry/start-registry.sh [PORT] [USER:PASSWORD]
# Prints the address; stop it with Ctrl-C (storage is a temporary directory, removed on exit).
set -euo pipefail
port=${1:-5000}
dir=$(mktemp -d -t warren-registry-XXXXXX)
trap 'rm -rf "$dir"' EXIT
auth=""
if [[ -n "${2:-}" ]]; then
  htpasswd -Bbn "${2%%:*}" "${2#*:}" > "$dir/htpasswd"
  auth=$'auth:\n  htpasswd:\n    realm: warren\n    path: '"$dir/htpasswd"
fi
cat > "$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$auth
YAML
echo "registry on 127.0.0.1:$port (storage $dir/storage); push with: skopeo copy --dest-tls-verify=false ... docker://127.0.0.1:$port/NAME:TAG" >&2
# Run the registry as a child (not exec: the EXIT trap must run to remove $dir), forward
# INT/TERM to it, wait for it, and exit with its status.
/usr/bin/docker-registry serve "$dir/config.yml" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' INT TERM
set +e
while :; do
  wait "$child"
  rc=$?
  # wait returns early (>128) when a trapped signal arrives; wait again until the child is gone.
  kill -0 "$child" 2>/dev/null || break
done
exit "$rc"
