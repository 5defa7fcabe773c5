#!/usr/bin/env bash
# Builds the helm command (helm.sh/helm/v4 v4.3.2) from the Go module proxy into
# $SPOTMAX_ASSETS_DIR, for the tests of charts/spotmax (scripts/charttest): `helm template` and
# `helm lint` render the chart with Helm's own template engine.
#
# Helm v4 brings k8s.io modules at versions that conflict with the k8s.io v0.37 modules of the main
# go.mod, so it is built in a throw-away module of its own, like kube-apiserver in build-kube.sh.
# About 2-3 minutes cold on 2 cores; a binary that is already there and answers `helm version` is
# not rebuilt.
set -euo pipefail

HELM_VERSION=v4.3.2

out=${SPOTMAX_ASSETS_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/.cache/testassets/bin}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -x "$out/helm" ] && "$out/helm" version --short >/dev/null 2>&1; then
  echo "helm: already built ($("$out/helm" version --short))" >&2
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
printf 'module example.com/helmbuild\n\ngo 1.26\n\nrequire helm.sh/helm/v4 %s\n' "$HELM_VERSION" >go.mod
printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/v4/cmd/helm"\n' >tools.go
echo "helm: resolving modules" >&2
GOFLAGS=-mod=mod go mod tidy
echo "helm: building $HELM_VERSION (2-3 minutes cold)" >&2
go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
  -o "$out/helm" helm.sh/helm/v4/cmd/helm
"$out/helm" version --short >&2
