#!/usr/bin/env bash
# Builds the real programs the tests run (kube-apiserver, etcd, a Consul agent, AWS's IMDS
# emulator, helm for the chart's tests) from the Go module proxy into an ignored cache, .cache/testassets/bin. Each builder in
# scripts/testassets/ skips its work when its binary is already there, so this is cheap after the
# first run. Nothing built here is ever committed.
set -euo pipefail
cd "$(dirname "$0")/.."
export SPOTMAX_ASSETS_DIR=${SPOTMAX_ASSETS_DIR:-$PWD/.cache/testassets/bin}
mkdir -p "$SPOTMAX_ASSETS_DIR"
shopt -s nullglob
for builder in scripts/testassets/build-*.sh; do
  echo "== $builder" >&2
  bash "$builder"
done
ls -l "$SPOTMAX_ASSETS_DIR" >&2
