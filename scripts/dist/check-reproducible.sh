#!/usr/bin/env bash
# Builds the release twice from this commit, the second time with an empty Go build cache (so
# every package is compiled again, not taken from the cache), and compares the SHA256SUMS.
# `make dist-check`; TestDistIsReproducible does the same for the agent with a shared cache.
set -euo pipefail
cd "$(dirname "$0")"
VERSION=${VERSION:-}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export VERSION SOURCE_DATE_EPOCH
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
targets=${TARGETS:-}
args=(-repo ../..)
[ -z "$targets" ] || args+=(-targets "$targets")
go run . "${args[@]}" -out "$tmp/a" dist >/dev/null
GOCACHE=$tmp/gocache go run . "${args[@]}" -out "$tmp/b" dist >/dev/null
if cmp -s "$tmp/a/SHA256SUMS" "$tmp/b/SHA256SUMS"; then
  echo "reproducible: two builds, one with an empty build cache, give the same SHA256SUMS:"
  cat "$tmp/a/SHA256SUMS"
else
  echo "NOT reproducible:" >&2
  diff "$tmp/a/SHA256SUMS" "$tmp/b/SHA256SUMS" >&2 || true
  exit 1
fi
