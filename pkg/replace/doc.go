// Package replace owns the replacement workflow: for one instance of a spotmax group it launches
// a replacement (spot on the group's type, then the alternative types, then on-demand), joins it
// to the group, retires the old instance through pluggable pre-detach steps (Consul
// deregistration, Kubernetes drain), detaches it, moves its EBS data volume to the replacement and
// terminates it. The steps are one table (steps.go); the pre-detach steps are registered, with
// their metrics, in package replace/steps, one package per step over a pure client. A stand-in
// for a member a group failed to launch (Workflow.Fill, fill.go) is launched by the same launcher
// as a replacement (launch.go), which owns the options, tokens and the state tag at launch.
//
// Every step is idempotent and its progress is journaled in EC2 tags (the spotmax:state:* keys
// of package groupconfig) on the old instance, the replacement, the data volume and the group, so
// that any spotmax process can resume a replacement after a crash without a database of its own.
// The invariants: a data volume is never deleted, never attached to two instances and never
// force-detached unless asked; the group's MaxSize is restored; a failure before the old instance
// is detached leaves it serving.
//
// The CLI (`spotmax replace`) and the controller (`spotmax run`) are the callers.
package replace
