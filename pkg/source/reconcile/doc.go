// Package reconcile is the periodic reconcile as a source: every interval it reads every spotmax
// group of the region (through inventory.Tracker, in O(pages) calls) and the journaled
// replacements into one Snapshot, and derives from it, without a call, the events that are due —
// notices relayed by agents, instances past their guaranteed lifetime, stand-ins old enough to go
// back to spot, journals to resume (Events). It never acts: each snapshot is handed to the
// consumer (Source.Apply) before its events are emitted, and the controller does its upkeep
// there (data volumes kept, MaxSize restored, the volume pool, warnings, gauges).
package reconcile
