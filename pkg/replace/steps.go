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
)

// step is one row of the workflow's step table: its name, the phase journaled once it is done
// and what it does.
type step struct {
	name string
	done Phase
	run  func(*run, context.Context) error
}

// stepTable is the workflow's one step table, in the usual order. Both the plan (Plan.Steps)
// and the execution read it, through sequence.
var stepTable = []step{
	{StepStart, PhaseStarted, (*run).start},
	{StepLaunch, PhaseLaunched, (*run).launch},
	{StepJoin, PhaseJoined, (*run).join},
	{StepRetire, PhaseRetired, (*run).retire},
	{StepDetach, PhaseDetached, (*run).detach},
	{StepMoveVolume, PhaseVolumeMoved, (*run).moveVolume},
	{StepFinish, PhaseDone, (*run).finish},
}

// sequence is the order a replacement runs the table in. The data volume normally moves once
// the old instance is out of the group; for an interrupted instance whose volume is already
// released (the agent unmounted it on the notice), it moves right after the launch
// (volumeFirst), so the replacement has its data before it takes traffic and well inside the
// two minutes. Without a data volume move-volume does nothing.
func sequence(volumeFirst bool) []step {
	if !volumeFirst {
		return stepTable
	}
	var move step
	var out []step
	for _, s := range stepTable {
		if s.name == StepMoveVolume {
			move = s
		}
	}
	for _, s := range stepTable {
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

// order is the run's sequence.
func (r *run) order() []step { return sequence(r.journal.has(optVolumeFirst)) }

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
	for _, s := range sequence(false) {
		if s.name == StepMoveVolume && r.plan.Volume == "" {
			continue
		}
		out = append(out, s.name)
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
