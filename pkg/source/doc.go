// Package source is the one event type every source produces and the planner
// (package controller) consumes: Event, its kinds, and its content-derived ID that makes the
// same notice seen by two sources one event.
//
// Sources only produce events; they never act. Each lives in a package of its own under
// pkg/source (sqs: EventBridge events delivered to an SQS queue; reconcile: the periodic read of
// every spotmax group and its journals) and implements the controller's Source interface:
// Run(ctx, out chan<- source.Event) error. An event's Source is one of the names SQS,
// Reconcile, Agent and CLI.
//
// Adding a source is one new package under pkg/source plus one line where `spotmax run` builds
// the controller's Sources (pkg/cli/run.go).
package source
