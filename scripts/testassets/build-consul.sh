#!/usr/bin/env bash
# Builds a real Consul agent, v1.15.4 (MPL-2.0; later lines are BSL, never use them), from the Go
# module proxy into $SPOTMAX_ASSETS_DIR/consul, for the Consul tests of pkg/consul and pkg/agent.
# The recipe is the one in ARCHITECTURE.md (Consul section): a throw-away module pinning the
# submodules that consul v1.15.4 needs (api v1.21.0, named by consul's go.mod, does not compile;
# v1.21.1 does) and excluding the go-msgpack versions that break it. About 3 minutes cold on 2 cores;
# skipped when the binary is already there and reports the right version.
set -euo pipefail
: "${SPOTMAX_ASSETS_DIR:=$(cd "$(dirname "$0")/../.." && pwd)/.cache/testassets/bin}"
VERSION=1.15.4
out=$SPOTMAX_ASSETS_DIR/consul
if [ -x "$out" ] && "$out" version 2>/dev/null | grep -q "Consul v$VERSION"; then
  echo "consul v$VERSION already built: $out" >&2
  exit 0
fi
mkdir -p "$SPOTMAX_ASSETS_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cat > go.mod <<MOD
module example.com/consulbuild

go 1.20

require github.com/hashicorp/consul v$VERSION

replace (
	github.com/hashicorp/consul/api => github.com/hashicorp/consul/api v1.21.1
	github.com/hashicorp/consul/envoyextensions => github.com/hashicorp/consul/envoyextensions v0.2.1
	github.com/hashicorp/consul/proto-public => github.com/hashicorp/consul/proto-public v0.3.0
	github.com/hashicorp/consul/sdk => github.com/hashicorp/consul/sdk v0.13.1
	github.com/hashicorp/consul/troubleshoot => github.com/hashicorp/consul/troubleshoot v0.2.0
)

exclude (
	github.com/hashicorp/go-msgpack v1.1.5
	github.com/hashicorp/go-msgpack v1.1.6
)
MOD
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/hashicorp/consul"
GO
echo "building consul v$VERSION (about 3 minutes cold)" >&2
GOFLAGS=-mod=mod go mod tidy
GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w -X github.com/hashicorp/consul/version.GitCommit=v$VERSION" -o "$out.tmp" github.com/hashicorp/consul
mv "$out.tmp" "$out"
"$out" version >&2
