package replace

import "context"

// Names of the workflow's steps, as progress reports, plans, metrics and logs show them.
const (
	StepStart      = "start"
	StepLaunch     = "launch"
	StepJoin       = "join"
	StepRetire     = "retire"
	StepDetach     = "detach"
	StepMoveVolume = "move-volume"
	StepFinish     = "finish"
	// The warm-pool route's own steps (warm.go).
	StepWarmPrepare = "warm-prepare"
	StepWarmDetach  = "warm-detach"
	StepWarmTake    = "warm-take"
	StepWarmJoin    = "warm-join"
	// StepCrossAZCopy is the part of move-volume that copies the data volume to a replacement
	// in another AZ through a snapshot (crossaz.go); a plan with cross-AZ options shows it as
	// "move-volume/cross-az-copy".
	StepCrossAZCopy = "cross-az-copy"
)

// route says which routes a step belongs to: the cold launch, the warm pool's, or both. A
// replacement that falls back from the warm pool to the cold launch runs the warm route's steps
// up to warm-take, then the cold route's from launch (warm.go).
type route uint8

const (
	routeCold route = 1 << iota
	routeWarm
	routeBoth = routeCold | routeWarm
)

// step is one row of the workflow's step table: its name, the phase journaled once it is done
// and what it does.
type step struct {
	name   string
	done   Phase
	run    func(*run, context.Context) error
	routes route
}

// stepTable is the workflow's one step table, in the usual order. Both the plan (Plan.Steps)
// and the execution read it, through sequence.
var stepTable = []step{
	{StepStart, PhaseStarted, (*run).start, routeBoth},
	{StepWarmPrepare, PhaseWarmPrepared, (*run).warmPrepare, routeWarm},
	{StepLaunch, PhaseLaunched, (*run).launch, routeCold},
	{StepJoin, PhaseJoined, (*run).join, routeCold},
	{StepRetire, PhaseRetired, (*run).retire, routeBoth},
	{StepDetach, PhaseDetached, (*run).detach, routeCold},
	{StepWarmDetach, PhaseWarmDetached, (*run).warmDetach, routeWarm},
	{StepWarmTake, PhaseWarmTaken, (*run).warmTake, routeWarm},
	{StepMoveVolume, PhaseVolumeMoved, (*run).moveVolume, routeBoth},
	{StepWarmJoin, PhaseWarmJoined, (*run).warmJoin, routeWarm},
	{StepFinish, PhaseDone, (*run).finish, routeBoth},
}

// sequence is the order a replacement runs the table in. The data volume normally moves once
// the old instance is out of the group; for an interrupted instance whose volume is already
// released (the agent unmounted it on the notice), it moves right after the launch
// (volumeFirst), so the replacement has its data before it takes traffic and well inside the
// two minutes. Without a data volume move-volume does nothing.
func sequence(volumeFirst bool) []step {
	cold := routeSteps(routeCold)
	if !volumeFirst {
		return cold
	}
	var move step
	var out []step
	for _, s := range cold {
		if s.name == StepMoveVolume {
			move = s
		}
	}
	for _, s := range cold {
		switch s.name {
		case StepMoveVolume:
			continue
		case StepJoin:
			out = append(out, move)
		}
		out = append(out, s)
	}
	return out
}

// routeSteps returns the table's steps of one route, in order.
func routeSteps(ro route) []step {
	var out []step
	for _, s := range stepTable {
		if s.routes&ro != 0 {
			out = append(out, s)
		}
	}
	return out
}

// order is the run's sequence: the warm pool's route (warm.go), its fallback, or the cold one.
func (r *run) order() []step {
	switch {
	case r.journal.has(optWarm):
		return warmSequence()
	case r.journal.has(optWarmFallback):
		return warmFallbackSequence(r.journal.has(optVolumeFirst))
	}
	return sequence(r.journal.has(optVolumeFirst))
}

// next returns the step after the journaled phase cur ("" before the first). A journal
// resumed from any prefix of the sequence continues with the first step not done.
func (r *run) next(cur Phase) (step, bool) {
	ord := r.order()
	if cur == "" {
		return ord[0], true
	}
	for i, s := range ord {
		if s.done == cur && i+1 < len(ord) {
			return ord[i+1], true
		}
	}
	return step{}, false
}

// planSteps lists the steps a plan shows: the sequence's names, with the enabled pre-detach
// steps after retire ("retire/consul-deregister").
func (r *run) planSteps() []string {
	var out []string
	seq := sequence(false)
	if r.plan.Warm {
		seq = warmSequence()
	}
	for _, s := range seq {
		if s.name == StepMoveVolume && len(r.plan.Volumes) == 0 {
			continue
		}
		out = append(out, s.name)
		if s.name == StepMoveVolume && len(r.plan.CrossAZOptions) > 0 {
			out = append(out, StepMoveVolume+"/"+StepCrossAZCopy)
		}
		if s.name == StepRetire {
			for _, p := range r.w.Steps {
				if p.Step.Enabled(r.g) {
					out = append(out, StepRetire+"/"+p.Step.Name())
				}
			}
		}
	}
	return out
}
