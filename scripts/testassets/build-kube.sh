#!/usr/bin/env bash
# Builds kube-apiserver (k8s.io/kubernetes v1.37.2) and etcd (go.etcd.io/etcd/server/v3 v3.7.3) from
# the Go module proxy into $SPOTMAX_ASSETS_DIR, for the tests of pkg/kube and `spotmax drain`.
#
# k8s.io/kubernetes cannot be required as is: its go.mod replaces every staging module (k8s.io/api,
# k8s.io/client-go, ...) with a local directory. A throw-away module requires it and maps each of
# those staging modules to its published v0.37.2 twin. About 6-7 minutes cold on 2 cores (etcd about
# 1 minute); a binary that is already there and answers --version is not rebuilt. The module cache
# (GOMODCACHE) is the default one, so reruns and other builders share downloads.
set -euo pipefail

KUBE_VERSION=v1.37.2
STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.7.3

out=${SPOTMAX_ASSETS_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/.cache/testassets/bin}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

built() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

build_kube_apiserver() {
  if built "$out/kube-apiserver"; then
    echo "kube-apiserver: already built ($("$out/kube-apiserver" --version))" >&2
    return
  fi
  local dir=$work/kube
  mkdir -p "$dir"
  cd "$dir"
  # kubernetes' own go.mod names the staging modules as "k8s.io/X => ./staging/src/k8s.io/X".
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  [ -f "$gomod" ] || { echo "build-kube: no go.mod for k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }
  local staging
  staging=$(sed -n 's#^[[:space:]]*\(replace[[:space:]]\+\)\{0,1\}\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\2#p' "$gomod" | sort -u)
  [ -n "$staging" ] || { echo "build-kube: found no staging modules in $gomod" >&2; exit 1; }
  {
    echo "module example.com/kubebuild"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
    echo ")"
  } >go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >tools.go
  echo "kube-apiserver: resolving modules ($(echo "$staging" | wc -l) staging modules)" >&2
  GOFLAGS=-mod=mod go mod tidy
  echo "kube-apiserver: building $KUBE_VERSION (6-7 minutes cold)" >&2
  local minor=${KUBE_VERSION#v1.}
  minor=${minor%%.*}
  go build -trimpath -ldflags "-s -w \
    -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
    -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=$minor" \
    -o "$out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  "$out/kube-apiserver" --version >&2
}

build_etcd() {
  if built "$out/etcd"; then
    echo "etcd: already built ($("$out/etcd" --version | head -n1))" >&2
    return
  fi
  local dir=$work/etcd
  mkdir -p "$dir"
  cd "$dir"
  printf 'module example.com/etcdbuild\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
  echo "etcd: resolving modules" >&2
  GOFLAGS=-mod=mod go mod tidy
  echo "etcd: building $ETCD_VERSION (about a minute cold)" >&2
  go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
  "$out/etcd" --version >&2
}

build_etcd
build_kube_apiserver
