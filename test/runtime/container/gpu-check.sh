#!/usr/bin/env bash
# GPU pass-through check for the container runtime, on a machine with NVIDIA GPUs:
# needs root, runc, busybox-static, node and the repository's npm dependencies.
# Builds a busybox root file system with the C library nvidia-smi needs (the driver's own
# libraries and nvidia-smi come from the node, as with Apptainer's --nv), then runs
# `nvidia-smi -L` in it through Warren's runtime with the given GPU indices (default 0).
# Usage: bash test/runtime/container/gpu-check.sh [GPU_INDEX...]
set -euo pipefail
cd "$(dirname "$0")/../../.."
for t in runc nvidia-smi busybox node; do
  command -v "$t" >/dev/null || { echo "gpu-check: $t not found (apt-get install runc busybox-static; NVIDIA driver for nvidia-smi)" >&2; exit 2; }
done
[[ $(id -u) -eq 0 ]] || { echo "gpu-check: run as root" >&2; exit 2; }
work=$(mktemp -d /tmp/warren-gpu-check-XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,proc,dev,sys,tmp}
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in $("$rootfs/bin/busybox" --list); do [[ $a == busybox ]] || ln -sf busybox "$rootfs/bin/$a"; done
# The C library and loader nvidia-smi links against (not the NVIDIA libraries: those are bound in).
smi=$(command -v nvidia-smi)
ldd "$smi" | grep -oE '/[^ ]+\.so[^ ]*' | grep -vE 'libnvidia|libcuda' | while read -r lib; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
node --import tsx test/runtime/container/gpu-check.ts "$rootfs" "$work/state" "$@"
