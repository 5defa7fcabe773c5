package controller

import "github.com/spotmax/spotmax/pkg/source"

// The reconcile (reconcile.go) still produces its events inside this package. Until it moves to
// pkg/source/reconcile (docs/architecture.md, "Not done yet"), these aliases let it name the
// one event type, which lives in package source; new code uses source.Event and its kinds.
type (
	// Event is source.Event.
	Event = source.Event
	// Kind is source.Kind.
	Kind = source.Kind
)

// The event kinds the reconcile produces, aliases of source's.
const (
	KindInterruption = source.KindInterruption
	KindRebalance    = source.KindRebalance
	KindLifetime     = source.KindLifetime
	KindRevert       = source.KindRevert
	KindResume       = source.KindResume
)
