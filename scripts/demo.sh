#!/usr/bin/env bash
# make demo-cli: start the simulated region with the shipped "demo" scenario, then use spotmax on it
# exactly as an operator would on AWS (the CLI reaches the simulator through AWS_ENDPOINT_URL).
# Needs nothing but the built binaries: no AWS account, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
SPOTMAX=${SPOTMAX:-bin/spotmax}

work=$(mktemp -d)
sim_pid=""
cleanup() {
  if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Start the simulated AWS region (scenario: demo)"
"$SPOTMAX" sim serve --scenario demo --addr 127.0.0.1:0 --time-scale 1 >"$work/env" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 100); do
  [ -s "$work/env" ] && break
  kill -0 "$sim_pid" 2>/dev/null || { cat "$work/sim.log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$work/env" ] || { echo "simulated region did not start" >&2; cat "$work/sim.log" >&2; exit 1; }
cat "$work/env"
eval "$(cat "$work/env")"
export AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
# Let the groups launch their instances.
sleep 3

step "The spotmax groups of the region"
run "$SPOTMAX" group list

step "Tag the group: 50-minute guaranteed lifetime, on-demand fallback, two alternative types"
run "$SPOTMAX" group tag web --guarantee-living-mins 50 --buffer-mins 2 --od-fallback --alt m5a.large,m6i.large --detaching-delay 80s --yes

step "A bad value is refused, names the group, the tag and the value, and writes nothing"
set +e
"$SPOTMAX" group tag web --set spotmax:detaching_delay_seconds=abc --yes
code=$?
set -e
echo "(exit code $code)"
[ "$code" -ne 0 ] || { echo "invalid tag was accepted" >&2; exit 1; }

step "The group's instances: market, AZ, lifetime left, data volume"
run "$SPOTMAX" group status web

step "The same as JSON, for scripts"
run "$SPOTMAX" group list -o json

step "Replace one instance: plan first, then for real (the data volume moves with it)"
old=$("$SPOTMAX" group status web -o json | grep -m1 '"id"' | sed 's/.*"id": "\(i-[0-9a-f]*\)".*/\1/')
run "$SPOTMAX" group tag web --detaching-delay 0 --preaction-detach-delay 0 --yes
run "$SPOTMAX" replace "$old" --dry-run
run "$SPOTMAX" replace "$old" --release-timeout 0s --yes

step "After the replacement"
run "$SPOTMAX" group status web

step "Every action is recorded: the replacement in spotmax history (CloudWatch Logs + metrics)"
run "$SPOTMAX" history --group web --since 1h --period 1m

step "What the group really cost, against the same hours all on-demand"
run "$SPOTMAX" savings --since 1h
