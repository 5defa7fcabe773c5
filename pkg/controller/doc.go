// Package controller is `spotmax run`: the daemon that keeps spotmax groups on spot.
//
// Sources only produce events: the EventBridge-on-SQS consumer, the relayed notices of agents
// (tags on instances), and the periodic reconcile of every spotmax group (guaranteed lifetimes,
// on-demand and alternative-type stand-ins to revert, journals to resume). The planner applies
// each group's configuration to events and hands replacements to a worker pool with a global and
// a per-group limit; the replacement itself is package replace's workflow.
package controller
