#!/usr/bin/env bash
# Installs spotmax-agent on an instance: the binary, the systemd unit and its environment file,
# then enables and starts it. Run as root, from user data or an image build.
#
#   install-agent.sh [--binary PATH] [--no-start] [KEY=VALUE ...]
#
# KEY=VALUE pairs go to /etc/spotmax/agent.env (SPOTMAX_* and CONSUL_HTTP_* variables), e.g.
#   install-agent.sh SPOTMAX_CONSUL_MODE=maintenance SPOTMAX_HANDLE_REBALANCE=true
#   install-agent.sh SPOTMAX_METRICS_ADDR=:9109 SPOTMAX_CLOUDWATCH=true   (metrics; off by default)
# The environment file is written with mode 0600: it may hold CONSUL_HTTP_TOKEN.
#
# Set the group's behaviour here: instances carry only the spotmax:group and
# spotmax:persistence_mount_path tags, so the agent learns whether the group handles rebalance
# recommendations and whether it runs Consul from this file (see docs/agent.md).
set -euo pipefail

binary=""
start=1
env_lines=()
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
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

if [ "$(id -u)" != 0 ]; then
  echo "install-agent.sh: run as root (the agent mounts file systems)" >&2
  exit 1
fi
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$binary" ]; then
  for c in "$here/../bin/spotmax-agent" "$here/spotmax-agent" ./spotmax-agent; do
    if [ -x "$c" ]; then binary=$c; break; fi
  done
fi
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
  echo "install-agent.sh: no spotmax-agent binary found; pass --binary PATH (build it with 'make build')" >&2
  exit 1
fi
for tool in lsblk blkid mount umount; do
  command -v "$tool" >/dev/null || { echo "install-agent.sh: $tool is missing (util-linux / mount)" >&2; exit 1; }
done

install -m 0755 "$binary" /usr/local/bin/spotmax-agent
install -d -m 0755 /etc/spotmax
unit_src="$here/spotmax-agent.service"
[ -f "$unit_src" ] || { echo "install-agent.sh: $unit_src is missing" >&2; exit 1; }
install -m 0644 "$unit_src" /etc/systemd/system/spotmax-agent.service

umask 077
tmp=$(mktemp /etc/spotmax/agent.env.XXXXXX)
{
  echo "# spotmax-agent settings, written by install-agent.sh on $(date -u +%FT%TZ)."
  echo "# See 'spotmax-agent --help' and docs/agent.md."
  for line in "${env_lines[@]+"${env_lines[@]}"}"; do echo "$line"; done
} > "$tmp"
chmod 0600 "$tmp"
mv "$tmp" /etc/spotmax/agent.env

/usr/local/bin/spotmax-agent --version
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable spotmax-agent.service
  if [ "$start" = 1 ]; then systemctl restart spotmax-agent.service; fi
else
  echo "install-agent.sh: no systemd here; installed but not started" >&2
fi
