package source

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Kind is what an event reports.
type Kind string

// Event kinds.
const (
	// KindInterruption is a spot interruption notice: the instance stops at Deadline.
	KindInterruption Kind = "interruption"
	// KindRebalance is an EC2 rebalance recommendation.
	KindRebalance Kind = "rebalance"
	// KindStateChange is an instance state change (e.g. stopping, terminated).
	KindStateChange Kind = "state-change"
	// KindLaunchFailure is an Auto Scaling launch that failed (e.g. no spot capacity).
	KindLaunchFailure Kind = "launch-failure"
	// KindLifetime is an instance that reached its guaranteed lifetime.
	KindLifetime Kind = "lifetime"
	// KindRevert is an on-demand or alternative-type stand-in old enough to go back to spot.
	KindRevert Kind = "revert"
	// KindResume is a journaled replacement to resume.
	KindResume Kind = "resume"
)

// The names of the producers, an Event's Source. The planner trusts an interruption from Agent
// (the instance's own IMDS notice, relayed by its agent) and confirms any other with EC2 first.
const (
	// SQS is the EventBridge-on-SQS source (package source/sqs).
	SQS = "sqs"
	// Reconcile is the periodic reconcile of every spotmax group (package source/reconcile).
	Reconcile = "reconcile"
	// Agent is a notice an instance's agent relayed in its state tag, read by the reconcile.
	Agent = "agent"
	// CLI is for an event a spotmax command hands to the planner (Controller.Handle) on an
	// operator's behalf; no command does so yet (`spotmax replace` runs the workflow directly).
	CLI = "cli"
)

// Event is the one event type every source produces and the planner (package controller)
// consumes.
type Event struct {
	// ID identifies the event; duplicates (the same notice seen by two sources, a redelivered
	// message) have the same ID. EnsureID derives one from the content when a source has none.
	ID       string
	Kind     Kind
	Instance string
	// Group is the Auto Scaling group when the source knows it; EventBridge events do not.
	Group string
	// Time is when the event happened; Deadline, for interruptions, when the instance stops.
	Time     time.Time
	Deadline time.Time
	// Source names the producer: SQS, Reconcile, Agent or CLI.
	Source string
	// Detail is free text for logs and metrics, e.g. the state of a state change.
	Detail string
}

// EnsureID sets ID from a hash of the content when it is empty. Two sources reporting the same
// notice (kind, instance, deadline) produce the same ID.
func (e *Event) EnsureID() {
	if e.ID != "" {
		return
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%s|%s|%s", e.Kind, e.Instance, e.Group, e.Deadline.UTC().Format(time.RFC3339), e.Detail)
	if e.Deadline.IsZero() {
		fmt.Fprintf(h, "|%s", e.Time.UTC().Truncate(time.Minute).Format(time.RFC3339))
	}
	e.ID = hex.EncodeToString(h.Sum(nil))[:16]
}

// String renders the event for logs.
func (e Event) String() string {
	s := fmt.Sprintf("%s %s", e.Kind, e.Instance)
	if e.Group != "" {
		s += " in " + e.Group
	}
	if !e.Deadline.IsZero() {
		s += " (deadline " + e.Deadline.UTC().Format(time.RFC3339) + ")"
	}
	return s + " from " + e.Source
}
