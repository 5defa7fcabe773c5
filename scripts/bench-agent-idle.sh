#!/usr/bin/env bash
# Measures spotmax-agent's idle footprint: RSS and CPU over a window with nothing happening
# (member of a group, no notice, no volume assigned), against AWS's IMDS emulator, with the
# default poll intervals. Also reports the size of the stripped binary.
#
#   [BASELINE_REV=<commit>] scripts/bench-agent-idle.sh [SECONDS]
#       (default 60; needs scripts/testassets/build-metadata-mock.sh)
#
# CPU is the process's user+system time from /proc/PID/stat (all its threads, in clock ticks):
# use a window of minutes, so that a tick is a small share (10 ms in 300 s is 0.003 % of a core).
# With BASELINE_REV the agent of that commit runs at the same time against the same emulator,
# side by side: a loaded machine slows both alike.
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

labels=(this-tree)
go build -trimpath -ldflags '-s -w' -o "$work/this-tree/spotmax-agent" ./cmd/spotmax-agent
if [ -n "${BASELINE_REV:-}" ]; then
	mkdir -p "$work/base-src"
	git archive "$BASELINE_REV" | tar -x -C "$work/base-src"
	(cd "$work/base-src" && go build -trimpath -ldflags '-s -w' -o "$work/$BASELINE_REV/spotmax-agent" ./cmd/spotmax-agent)
	labels+=("$BASELINE_REV")
fi

# The floor: a Go program that does nothing but wake at the notice poll's period. On a virtual
# machine a timer wake-up alone costs measurable CPU, which no request path can go below.
mkdir -p "$work/floor"
cat > "$work/floor/main.go" <<'GO'
package main

import "time"

func main() {
	for range time.Tick(180 * time.Millisecond) {
	}
}
GO
(cd "$work/floor" && printf 'module floor\ngo 1.22\n' > go.mod && go build -o floor .)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/aemm.json" <<JSON
{"metadata":{"paths":{"tags-instance-name":"/latest/meta-data/tags/instance/spotmax:group","tags-instance-test":"/latest/meta-data/unused"},
 "values":{"tags-instance-name":"web"}}}
JSON
HOME=$work "$mock" -n 127.0.0.1 -p "$port" -I -d 86400 --rebalance-delay-sec 86400 --asg-termination-delay-sec 86400 \
  -c "$work/aemm.json" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "http://127.0.0.1:$port/latest/api/token" >/dev/null && break; sleep 0.05; done

declare -A agent
for l in "${labels[@]}"; do
	# GOMAXPROCS=1 as the systemd unit sets it (override with GOMAXPROCS=N in the environment).
	GOMAXPROCS=${GOMAXPROCS:-1} "$work/$l/spotmax-agent" --imds-endpoint "http://127.0.0.1:$port" --consul-mode off \
		--state-dir "$work/$l/state" --by-id-dir "$work/$l/by-id" --log-format json ${AGENT_ARGS:-} 2>"$work/$l/agent.log" &
	agent[$l]=$!
	pids+=($!)
done
GOMAXPROCS=${GOMAXPROCS:-1} "$work/floor/floor" &
floor=$!
pids+=($!)
sleep 5
for l in "${labels[@]}"; do
	grep -q '"spotmax-agent started"' "$work/$l/agent.log" || { echo "the agent ($l) did not start:"; cat "$work/$l/agent.log"; exit 1; }
done
tck=$(getconf CLK_TCK)
oncpu() { awk -v t="$tck" '{print ($14+$15)/t*1e9}' "/proc/$1/stat"; } # ns of user+sys, all threads
declare -A t0
for l in "${labels[@]}"; do t0[$l]=$(oncpu "${agent[$l]}"); done
f0=$(oncpu "$floor")
s0=$(date +%s.%N); load0=$(cut -d' ' -f1 /proc/loadavg)
sleep "$secs"
s1=$(date +%s.%N); load1=$(cut -d' ' -f1 /proc/loadavg)
echo "window: ${secs} s; load average $load0 at the start, $load1 at the end (defaults: spot notice polled every 180 ms; rebalance, lifecycle state and tags every 2 s)"
for l in "${labels[@]}"; do
	p=${agent[$l]}
	t1=$(oncpu "$p")
	st=/proc/$p/status
	rss=$(awk '/VmRSS/{print $2}' "$st"); anon=$(awk '/RssAnon/{print $2}' "$st"); file=$(awk '/RssFile/{print $2}' "$st"); hwm=$(awk '/VmHWM/{print $2}' "$st")
	size=$(stat -c %s "$work/$l/spotmax-agent")
	cpu=$(echo "${t0[$l]} $t1 $s0 $s1" | awk '{printf "%.3f", 100*($2-$1)/1e9/($4-$3)}')
	echo "[$l] binary $size bytes ($(echo "$size" | awk '{printf "%.1f", $1/1048576}') MiB, stripped); idle RSS ${rss} kB (peak ${hwm} kB; anonymous ${anon} kB, file-backed ${file} kB); idle CPU ${cpu} % of one core"
done
f1=$(oncpu "$floor")
echo "[floor] a Go program that only wakes every 180 ms: CPU $(echo "$f0 $f1 $s0 $s1" | awk '{printf "%.3f", 100*($2-$1)/1e9/($4-$3)}') % of one core"
