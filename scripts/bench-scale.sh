#!/usr/bin/env bash
# bench-scale.sh: the controller at fleet scale (docs/benchmarks.md, "Fleet scale").
# Serves a simulated region of GROUPS spotmax groups × PER instances in one process and measures,
# in other processes, reconciles with today's full listing and with the incremental inventory
# (API calls by service, CPU user+sys, RSS, wall time per reconcile), then a long-running
# `spotmax run --interval 10s` for RUN_FOR: this tree's, and with BASELINE_REV set the spotmax of
# that commit (today's full listing) first. INTERVALS runs this tree's `spotmax run` once per
# INTERVAL:DURATION pair instead (e.g. INTERVALS="10s:65s 2m:250s" at 10,000 groups, where the
# API budget asks for 2 minutes); each line reports the call rate per second.
#   [BASELINE_REV=<commit>] [RECONCILES=6] [RUN_FOR=65s] [INTERVALS="10s:65s ..."] scripts/bench-scale.sh [GROUPS] [PER]  (defaults 1000 10)
set -euo pipefail
GROUPS_N=${1:-1000}
PER=${2:-10}
RECONCILES=${RECONCILES:-6}
RUN_FOR=${RUN_FOR:-65s}
INTERVALS=${INTERVALS:-10s:$RUN_FOR}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
simpid=
cleanup() {
	[ -n "$simpid" ] && kill "$simpid" 2>/dev/null && wait "$simpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/benchscale" ./scripts/benchscale
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/spotmax" ./cmd/spotmax
"$tmp/benchscale" serve -groups "$GROUPS_N" -per "$PER" >"$tmp/env" &
simpid=$!
until [ -s "$tmp/env" ]; do
	kill -0 "$simpid" || { echo "simulator exited" >&2; exit 1; }
	sleep 0.5
done
# shellcheck disable=SC1091
. "$tmp/env"
echo "# $GROUPS_N groups x $PER instances, simulator pid $simpid at $AWS_ENDPOINT_URL"
echo "# reconciles in a separate process (first of each mode is the full listing that fills the cache)"
"$tmp/benchscale" reconcile -mode full -n "$RECONCILES"
"$tmp/benchscale" reconcile -mode incremental -n "$RECONCILES"
pages=$(((GROUPS_N + 99) / 100))
if [ "${RUN_FOR}" != "0" ]; then
	if [ -n "${BASELINE_REV:-}" ]; then
		echo "# long-running spotmax run --interval 10s of $BASELINE_REV for $RUN_FOR"
		# Today's full listing: the spotmax of BASELINE_REV (e.g. the commit before the Tracker).
		mkdir "$tmp/base"
		git archive "$BASELINE_REV" | tar -x -C "$tmp/base"
		(cd "$tmp/base" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/spotmax-base" ./cmd/spotmax)
		"$tmp/benchscale" run -spotmax "$tmp/spotmax-base" -for "$RUN_FOR" -pages "$pages" -label "full ($BASELINE_REV)"
	fi
	for iv in $INTERVALS; do
		echo "# long-running spotmax run --interval ${iv%%:*} for ${iv#*:}"
		"$tmp/benchscale" run -spotmax "$tmp/spotmax" -interval "${iv%%:*}" -for "${iv#*:}" -pages "$pages" -label incremental
	done
fi
