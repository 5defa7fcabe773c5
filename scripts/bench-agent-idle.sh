#!/usr/bin/env bash
# Measures spotmax-agent's idle footprint: RSS and CPU over a window with nothing happening
# (member of a group, no notice, no volume assigned), against AWS's IMDS emulator, with the
# default poll intervals. Also reports the size of the stripped binary.
#
#   scripts/bench-agent-idle.sh [SECONDS]     (default 60; needs scripts/testassets/build-metadata-mock.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
assets=${SPOTMAX_ASSETS_DIR:-$PWD/.cache/testassets/bin}
mock=$assets/ec2-metadata-mock
[ -x "$mock" ] || bash scripts/testassets/build-metadata-mock.sh
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

go build -trimpath -ldflags '-s -w' -o "$work/spotmax-agent" ./cmd/spotmax-agent
size=$(stat -c %s "$work/spotmax-agent")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/aemm.json" <<JSON
{"metadata":{"paths":{"tags-instance-name":"/latest/meta-data/tags/instance/spotmax:group","tags-instance-test":"/latest/meta-data/unused"},
 "values":{"tags-instance-name":"web"}}}
JSON
HOME=$work "$mock" -n 127.0.0.1 -p "$port" -I -d 86400 --rebalance-delay-sec 86400 --asg-termination-delay-sec 86400 \
  -c "$work/aemm.json" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "http://127.0.0.1:$port/latest/api/token" >/dev/null && break; sleep 0.05; done

# GOMAXPROCS=1 as the systemd unit sets it (override with GOMAXPROCS=N in the environment).
GOMAXPROCS=${GOMAXPROCS:-1} "$work/spotmax-agent" --imds-endpoint "http://127.0.0.1:$port" --consul-mode off --state-dir "$work/state" \
  --by-id-dir "$work/by-id" --log-format json ${AGENT_ARGS:-} 2>"$work/agent.log" &
agent=$!
pids+=($agent)
sleep 5
grep -q '"spotmax-agent started"' "$work/agent.log" || { echo "the agent did not start:"; cat "$work/agent.log"; exit 1; }
tck=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' "/proc/$agent/stat"; }
t0=$(ticks); s0=$(date +%s.%N)
sleep "$secs"
t1=$(ticks); s1=$(date +%s.%N)
rss=$(awk '/VmRSS/{print $2}' "/proc/$agent/status"); anon=$(awk '/RssAnon/{print $2}' "/proc/$agent/status"); file=$(awk '/RssFile/{print $2}' "/proc/$agent/status")
hwm=$(awk '/VmHWM/{print $2}' "/proc/$agent/status")
cpu=$(echo "$t0 $t1 $s0 $s1 $tck" | awk '{printf "%.3f", 100*($2-$1)/$5/($4-$3)}')
echo "binary size:  $size bytes ($(echo "$size" | awk '{printf "%.1f", $1/1048576}') MiB, stripped)"
echo "idle RSS:     ${rss} kB (peak ${hwm} kB; anonymous ${anon} kB, file-backed ${file} kB)"
echo "idle CPU:     ${cpu} % of one core over ${secs} s (defaults: spot notice every 180 ms; rebalance, lifecycle state and tags every 2 s)"
