// Package controller is `spotmax run`: the planner and the worker pool that keep spotmax groups
// on spot.
//
// Sources only produce events (package source: the one event type; package source/sqs: the
// EventBridge-on-SQS consumer). The planner (Controller.handle) makes every policy decision: it
// applies each group's configuration to an event and hands the replacement it calls for to a
// worker pool with a global and a per-group limit; the replacement itself is package replace's
// workflow. Leader election is package leader; RunElected runs one term.
//
// The periodic reconcile of every spotmax group (guaranteed lifetimes, stand-ins to revert,
// journals to resume, notices relayed by agents) still lives here (reconcile.go), together with
// the upkeep it does on the way (data volumes kept, MaxSize restored, the volume pool);
// docs/architecture.md ("Where each concept lives") says how it moves to pkg/source/reconcile.
package controller
