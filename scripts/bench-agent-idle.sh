#!/usr/bin/env bash
# Measures spotmax-agent's idle footprint: RSS and CPU over a window with nothing happening
# (member of a group, no notice, no volume assigned), against AWS's IMDS emulator, with the
# default poll intervals. Also reports the size of the stripped binary.
#
#   [BASELINE_REV=<commit>] scripts/bench-agent-idle.sh [SECONDS]
#       (default 60; needs scripts/testassets/build-metadata-mock.sh)
#
# CPU is each process's time on a CPU over the window, summed over its threads from
# /proc/PID/task/*/schedstat (nanoseconds, as the scheduler accounts it; /proc/PID/stat's clock
# ticks sample a process that wakes for microseconds too coarsely). With BASELINE_REV the agent of
# that commit runs at the same time against the same emulator, side by side: a loaded machine
# slows both alike, so compare the ratios more than the absolute numbers.
#
# Two floors run alongside, Go programs that do nothing but wake every 180 ms (the notice poll's
# period): one on a Go timer (time.Tick), one on a kernel timer (timerfd) read through the
# runtime's poller, as the agent's watcher does. On a virtual machine a wake-up alone costs
# measurable CPU, which no request path can go below; a Go timer also wakes the runtime's monitor
# thread (sysmon) at each expiry.
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
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/this-tree/spotmax-agent" ./cmd/spotmax-agent
if [ -n "${BASELINE_REV:-}" ]; then
	mkdir -p "$work/base-src"
	git archive "$BASELINE_REV" | tar -x -C "$work/base-src"
	(cd "$work/base-src" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/$BASELINE_REV/spotmax-agent" ./cmd/spotmax-agent)
	labels+=("$BASELINE_REV")
fi

# The floors (see the top).
mkdir -p "$work/floor" "$work/kfloor"
cat > "$work/floor/main.go" <<'GO'
package main

import "time"

func main() {
	for range time.Tick(180 * time.Millisecond) {
	}
}
GO
cat > "$work/kfloor/main.go" <<'GO'
package main

import (
	"os"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	fd, _, e := syscall.Syscall(syscall.SYS_TIMERFD_CREATE, 1 /* CLOCK_MONOTONIC */, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		panic(e)
	}
	p := syscall.NsecToTimespec(int64(180 * time.Millisecond))
	spec := [2]syscall.Timespec{p, p} // interval, first expiry (relative)
	if _, _, e := syscall.Syscall6(syscall.SYS_TIMERFD_SETTIME, fd, 0, uintptr(unsafe.Pointer(&spec[0])), 0, 0, 0); e != 0 {
		panic(e)
	}
	rc, err := os.NewFile(fd, "timerfd").SyscallConn()
	if err != nil {
		panic(err)
	}
	var buf [8]byte
	for {
		_ = rc.Read(func(fd uintptr) bool {
			_, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), 8)
			return e != syscall.EAGAIN
		})
	}
}
GO
for f in floor kfloor; do (cd "$work/$f" && printf 'module floor\ngo 1.22\n' > go.mod && go build -o "$f" .); done

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
	# AWS_ENDPOINT_URL: its EC2 calls (announcing itself) go to a closed loopback port, not AWS.
	AWS_ENDPOINT_URL=http://127.0.0.1:9 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
		GOMAXPROCS=${GOMAXPROCS:-1} "$work/$l/spotmax-agent" --imds-endpoint "http://127.0.0.1:$port" --consul-mode off \
		--state-dir "$work/$l/state" --by-id-dir "$work/$l/by-id" --log-format json ${AGENT_ARGS:-} 2>"$work/$l/agent.log" &
	agent[$l]=$!
	pids+=($!)
done
declare -A floor
for f in floor kfloor; do
	GOMAXPROCS=${GOMAXPROCS:-1} "$work/$f/$f" &
	floor[$f]=$!
	pids+=($!)
done
sleep 5
for l in "${labels[@]}"; do
	grep -q '"spotmax-agent started"' "$work/$l/agent.log" || { echo "the agent ($l) did not start:"; cat "$work/$l/agent.log"; exit 1; }
done
oncpu() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {print s}'; } # ns on a CPU, all threads
declare -A t0 cpu
for p in "${agent[@]}" "${floor[@]}"; do t0[$p]=$(oncpu "$p"); done
s0=$(date +%s.%N); load0=$(cut -d' ' -f1 /proc/loadavg)
sleep "$secs"
for p in "${agent[@]}" "${floor[@]}"; do cpu[$p]=$(oncpu "$p"); done
s1=$(date +%s.%N); load1=$(cut -d' ' -f1 /proc/loadavg)
pct() { echo "${t0[$1]} ${cpu[$1]} $s0 $s1" | awk '{printf "%.3f", 100*($2-$1)/1e9/($4-$3)}'; }
ratio() { echo "$1 $2" | awk '{if ($2 > 0) printf "%.2f", $1/$2; else print "-"}'; }
echo "window: ${secs} s; load average $load0 at the start, $load1 at the end; GOMAXPROCS=${GOMAXPROCS:-1} for all"
echo "(CPU: time on a CPU over the window, all threads, from /proc/PID/task/*/schedstat; all processes ran side by side)"
echo "(defaults: spot notice polled every 180 ms; rebalance, lifecycle state and tags every 2 s)"
fl=$(pct "${floor[floor]}")
kfl=$(pct "${floor[kfloor]}")
base=""
[ -n "${BASELINE_REV:-}" ] && base=$(pct "${agent[$BASELINE_REV]}")
for l in "${labels[@]}"; do
	p=${agent[$l]}
	st=/proc/$p/status
	rss=$(awk '/VmRSS/{print $2}' "$st"); anon=$(awk '/RssAnon/{print $2}' "$st"); file=$(awk '/RssFile/{print $2}' "$st"); hwm=$(awk '/VmHWM/{print $2}' "$st")
	size=$(stat -c %s "$work/$l/spotmax-agent")
	c=$(pct "$p")
	vs="$(ratio "$c" "$fl")× the Go-timer floor, $(ratio "$c" "$kfl")× the kernel-timer floor"
	[ -n "$base" ] && [ "$l" != "$BASELINE_REV" ] && vs="$vs, $(ratio "$c" "$base")× the baseline"
	echo "[$l] idle CPU ${c} % of one core ($vs); binary $size bytes ($(echo "$size" | awk '{printf "%.1f", $1/1048576}') MiB, stripped); idle RSS ${rss} kB (peak ${hwm} kB; anonymous ${anon} kB, file-backed ${file} kB)"
done
echo "[floor] a Go program that only wakes every 180 ms on a Go timer: CPU $fl % of one core"
echo "[kernel-timer floor] the same woken by a timerfd through the runtime's poller: CPU $kfl % of one core"
echo "goal (issue 16): idle CPU ≤ 0.15 % of one core with notice → deregistered p95 ≤ 200 ms"
