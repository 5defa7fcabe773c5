// Package controller is `spotmax run`: the planner and the worker pool that keep spotmax groups
// on spot.
//
// Sources only produce events (package source: the one event type and the sources' names;
// package source/sqs: the EventBridge-on-SQS consumer; package source/reconcile: the periodic
// reconcile of every spotmax group). The planner (Controller.handle) makes every policy decision: it
// applies each group's configuration to an event and hands the replacement it calls for to a
// worker pool with a global and a per-group limit; the replacement itself is package replace's
// workflow. Leader election is package leader; RunElected runs one term.
//
// The reconcile source hands each snapshot of the region to the controller before its events
// (reconcile.go, apply): the upkeep a snapshot calls for — data volumes kept, MaxSize restored,
// the volume pool tended, warnings, gauges — is done there, in Run's loop, together with the
// re-offer of interruption warnings EC2 has not confirmed yet and the group maps handle and
// ManagedInstances read.
package controller
