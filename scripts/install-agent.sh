#!/usr/bin/env bash
# Installs spotmax-agent on an instance: the binary, the systemd unit and its environment file,
# then enables and starts it. Run as root, from user data or an image build. Amazon Linux 2023
# and Ubuntu (and other systemd distributions with curl or wget, sha256sum and util-linux).
#
#   install-agent.sh --release URL [--no-start] [--root DIR] [KEY=VALUE ...]
#   install-agent.sh [--binary PATH] [--no-start] [--root DIR] [KEY=VALUE ...]
#
# --release URL: a release directory (https://, http:// or file://) holding SHA256SUMS and the
#   archives of `make dist`. The archive for this machine's architecture (uname -m: x86_64 is
#   amd64, aarch64 is arm64) is downloaded, its SHA-256 checked against SHA256SUMS, and its
#   binary and unit installed; a mismatch installs nothing.
# --binary PATH: a spotmax-agent binary already here (default: bin/spotmax-agent of a checkout,
#   or one beside this script, as in an unpacked release archive).
# --root DIR: install under DIR instead of / and leave systemd alone (an image being built).
#
# KEY=VALUE pairs go to /etc/spotmax/agent.env (SPOTMAX_* and CONSUL_HTTP_* variables), e.g.
#   install-agent.sh SPOTMAX_CONSUL_MODE=maintenance SPOTMAX_HANDLE_REBALANCE=true
#   install-agent.sh SPOTMAX_METRICS_ADDR=:9109 SPOTMAX_CLOUDWATCH=true   (metrics; off by default)
# The environment file is written with mode 0600: it may hold CONSUL_HTTP_TOKEN.
#
# Set the group's behaviour here: instances carry only the spotmax:group and
# spotmax:persistence_mount_path tags, so the agent learns whether the group handles rebalance
# recommendations and whether it runs Consul from this file (see docs/agent.md). The .deb and
# .rpm packages are the other way to install (docs/install.md).
set -euo pipefail

binary=""
release=""
root=""
start=1
env_lines=()
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --release) release=${2%/}; shift 2 ;;
    --root) root=${2%/}; shift 2 ;;
    --no-start) start=0; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *=*)
      key=${1%%=*}
      case "$key" in
        SPOTMAX_*|CONSUL_HTTP_*|CONSUL_CACERT|CONSUL_TLS_SERVER_NAME|AWS_*) env_lines+=("$1") ;;
        *) echo "install-agent.sh: $key is not an agent setting (SPOTMAX_*, CONSUL_HTTP_*, AWS_*)" >&2; exit 2 ;;
      esac
      shift ;;
    *) echo "install-agent.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$binary" ] && [ -n "$release" ]; then
  echo "install-agent.sh: --binary and --release exclude each other" >&2
  exit 2
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-agent.sh: run as root (the agent mounts file systems)" >&2
  exit 1
fi
for tool in lsblk blkid mount umount; do
  command -v "$tool" >/dev/null || { echo "install-agent.sh: $tool is missing (util-linux / mount)" >&2; exit 1; }
done

here=$(cd "$(dirname "$0")" && pwd)
unit_src="$here/spotmax-agent.service"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# download URL FILE: curl (Amazon Linux 2023's curl-minimal and Ubuntu's curl read file:// too),
# else wget for http(s), else a plain copy for file://.
download() {
  if command -v curl >/dev/null; then
    curl -fsSL --retry 3 -o "$2" "$1"
  elif [ "${1#file://}" != "$1" ]; then
    cp "${1#file://}" "$2"
  elif command -v wget >/dev/null; then
    wget -q -O "$2" "$1"
  else
    echo "install-agent.sh: neither curl nor wget is installed to download $1" >&2
    return 1
  fi
}

if [ -n "$release" ]; then
  case "$(uname -m)" in
    x86_64|amd64) arch=amd64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) echo "install-agent.sh: no spotmax-agent release for architecture $(uname -m) (amd64 and arm64 only)" >&2; exit 1 ;;
  esac
  download "$release/SHA256SUMS" "$work/SHA256SUMS" ||
    { echo "install-agent.sh: cannot download $release/SHA256SUMS" >&2; exit 1; }
  sums=$(grep -E "^[0-9a-f]{64}  spotmax-agent_[^ /]+_linux_${arch}\.tar\.gz$" "$work/SHA256SUMS" || true)
  if [ "$(printf '%s\n' "$sums" | grep -c .)" != 1 ]; then
    echo "install-agent.sh: $release/SHA256SUMS names $(printf '%s\n' "$sums" | grep -c .) spotmax-agent archives for linux/$arch, want exactly one" >&2
    exit 1
  fi
  archive=${sums#*  }
  download "$release/$archive" "$work/$archive" ||
    { echo "install-agent.sh: cannot download $release/$archive" >&2; exit 1; }
  if ! (cd "$work" && printf '%s\n' "$sums" | sha256sum -c --status -); then
    echo "install-agent.sh: checksum mismatch: $archive does not match its SHA-256 in $release/SHA256SUMS; refusing to install it" >&2
    exit 1
  fi
  tar -xzf "$work/$archive" -C "$work"
  dir="$work/${archive%.tar.gz}"
  binary="$dir/spotmax-agent"
  unit_src="$dir/spotmax-agent.service"
  echo "install-agent.sh: $archive verified (sha256 ${sums%%  *})" >&2
fi

if [ -z "$binary" ]; then
  for c in "$here/../bin/spotmax-agent" "$here/spotmax-agent" ./spotmax-agent; do
    if [ -x "$c" ]; then binary=$c; break; fi
  done
fi
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
  echo "install-agent.sh: no spotmax-agent binary found; pass --release URL or --binary PATH (build it with 'make build')" >&2
  exit 1
fi
[ -f "$unit_src" ] || { echo "install-agent.sh: $unit_src is missing" >&2; exit 1; }

install -d -m 0755 "$root/usr/local/bin" "$root/etc/spotmax" "$root/etc/systemd/system"
install -m 0755 "$binary" "$root/usr/local/bin/spotmax-agent"
install -m 0644 "$unit_src" "$root/etc/systemd/system/spotmax-agent.service"

umask 077
tmp=$(mktemp "$root/etc/spotmax/agent.env.XXXXXX")
{
  echo "# spotmax-agent settings, written by install-agent.sh on $(date -u +%FT%TZ)."
  echo "# See 'spotmax-agent --help' and docs/agent.md."
  for line in "${env_lines[@]+"${env_lines[@]}"}"; do echo "$line"; done
} > "$tmp"
chmod 0600 "$tmp"
mv "$tmp" "$root/etc/spotmax/agent.env"

"$root/usr/local/bin/spotmax-agent" --version
if [ -n "$root" ]; then
  echo "install-agent.sh: installed under $root; enable spotmax-agent.service in the image" >&2
elif command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable spotmax-agent.service
  if [ "$start" = 1 ]; then systemctl restart spotmax-agent.service; fi
else
  echo "install-agent.sh: no systemd here; installed but not started" >&2
fi
