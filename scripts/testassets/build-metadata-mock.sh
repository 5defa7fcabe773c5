#!/usr/bin/env bash
# Builds amazon-ec2-metadata-mock v1.13.0 (Apache-2.0), AWS's own IMDS emulator, from the Go module
# proxy into $SPOTMAX_ASSETS_DIR/ec2-metadata-mock, for the IMDS tests of pkg/imds and pkg/agent.
# `go install`-style (module@version, no replace directives needed); skipped when already built.
set -euo pipefail
: "${SPOTMAX_ASSETS_DIR:=$(cd "$(dirname "$0")/../.." && pwd)/.cache/testassets/bin}"
VERSION=v1.13.0
out=$SPOTMAX_ASSETS_DIR/ec2-metadata-mock
stamp=$SPOTMAX_ASSETS_DIR/.ec2-metadata-mock.version
if [ -x "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$VERSION" ]; then
  echo "ec2-metadata-mock $VERSION already built: $out" >&2
  exit 0
fi
mkdir -p "$SPOTMAX_ASSETS_DIR"
gobin=$(mktemp -d)
trap 'rm -rf "$gobin"' EXIT
echo "building ec2-metadata-mock $VERSION" >&2
# GOFLAGS is cleared so a -mod=vendor/-mod=mod from the caller cannot break `go install m@v`.
GOFLAGS= GOBIN=$gobin go install -trimpath -ldflags='-s -w' "github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@$VERSION"
mv "$gobin/ec2-metadata-mock" "$out"
echo "$VERSION" > "$stamp"
"$out" --version >&2 || true
