package groupconfig

import (
	"slices"
	"strings"
)

// StatePrefix is the prefix of the tags in which spotmax records its own progress on groups,
// instances and volumes: replacement journals, what the agent reports, notices it relays. They
// are not configuration: Parse ignores them on groups, and `spotmax group tag` never writes them.
// Keeping the workflow's state in tags is what lets any spotmax process resume a replacement
// after a crash without a database of its own.
const StatePrefix = Prefix + "state:"

// Progress tags. The replacement workflow writes and reads the journal tags; the agent reads the
// volume assignment on its own instance (through IMDS instance tags) and writes the release and
// mount reports.
const (
	// StateGroupMaxSize is set on a group while a replacement has raised its MaxSize by one to
	// attach the replacement; the value is the MaxSize to restore.
	StateGroupMaxSize = StatePrefix + "max_size"

	// StatePhase on an instance being replaced is the journal: the last step completed.
	StatePhase = StatePrefix + "phase"
	// StateJournalGroup on an instance being replaced names its group: once the instance is
	// detached, AWS's own group tag is gone.
	StateJournalGroup = StatePrefix + "group"
	// StateDesired on an instance being replaced is the group's desired capacity before the
	// replacement joined: written just before the attach, it marks that the group got an extra
	// member, which is taken back if the old instance is lost (terminated while still in the
	// group) instead of detached. The count is for the record only: with other replacements in
	// the group at the same time it is no baseline (takeback.go reads the group's activities).
	// On a stand-in (StateFill) it is the desired capacity its attach raises and the fill sets
	// back, written before the attach so that a fill resumed after a crash sets back only that
	// increment; removed with StateFill.
	StateDesired = StatePrefix + "desired"
	// StateTakeBack on an instance lost while still in its group names how the extra member is
	// taken back, recorded before the call: the member the group launched in its place
	// (terminated with the desired capacity decremented), or "desired:N" when the desired
	// capacity is set from N to N-1 because the group could not launch.
	StateTakeBack = StatePrefix + "take_back"
	// StateJournalVolume on an instance being replaced names its data volume, recorded when the
	// journal is written: once the instance is gone its block devices no longer name it.
	StateJournalVolume = StatePrefix + "data_volume"
	// StateReplacement on an instance being replaced names its replacement once launched.
	StateReplacement = StatePrefix + "replacement"
	// StateReason on an instance being replaced says why: interruption, lifetime, revert, manual,
	// rebalance.
	StateReason = StatePrefix + "reason"
	// StateStarted on an instance being replaced is when the replacement started (RFC 3339).
	StateStarted = StatePrefix + "started"
	// StateToken on an instance being replaced is the idempotency token of the replacement's
	// launch, so that a resumed launch returns the same instance instead of a second one.
	StateToken = StatePrefix + "token"
	// StateOptions on an instance being replaced carries the replacement's options that a resume
	// must honour (e.g. "force-detach").
	StateOptions = StatePrefix + "options"
	// StateReplaces on a replacement names the instance it replaces; set at launch.
	StateReplaces = StatePrefix + "replaces"
	// StateFill on an instance names the group it was launched to fill when the group's own launch
	// failed (spotmax:is_to_handle_scaling_failure); it is removed once the instance is a member
	// and the group's desired capacity and MaxSize are set back.
	StateFill = StatePrefix + "fill"
	// StateOwner on an instance being replaced names the actor driving its journal (a process of
	// `spotmax replace` or `spotmax run`); StateLeaseUntil is when that actor's lease ends unless
	// renewed (RFC 3339). Another actor leaves the journal alone until the lease has expired.
	StateOwner      = StatePrefix + "owner"
	StateLeaseUntil = StatePrefix + "lease_until"
	// StateRetiring on an instance marks a proactive retirement: the agent releases its data
	// volume and deregisters it as it would on an interruption notice.
	StateRetiring = StatePrefix + "retiring"

	// StateVolume on a replacement names the data volumes assigned to it (a list, see
	// SplitStateList); the agent waits for each volume and mounts it at the StateMountPath entry
	// of the same position.
	StateVolume = StatePrefix + "volume"
	// StateMountPath on a replacement is where the agent mounts each data volume of StateVolume.
	StateMountPath = StatePrefix + "mount_path"
	// StateVolumeReleased on an instance names the data volumes the agent unmounted cleanly (a
	// list, grown by one entry after each unmount), so the workflow may detach each one.
	StateVolumeReleased = StatePrefix + "volume_released"
	// StateVolumeMounted on an instance names the data volumes the agent mounted (a list).
	StateVolumeMounted = StatePrefix + "volume_mounted"
	// StateNotice on an instance relays an interruption notice the agent saw (action@time), for a
	// controller without an EventBridge queue.
	StateNotice = StatePrefix + "notice"

	// StateMovingTo on a data volume names the instance it is moving to; StateMovingFrom the one
	// it leaves.
	StateMovingTo   = StatePrefix + "moving_to"
	StateMovingFrom = StatePrefix + "moving_from"

	// StateDevice on a pooled data volume is the device it is attached at in its group (the
	// group's spotmax:persistence_dev); with the spotmax:group tag it makes the volume the
	// group's, not an instance's.
	StateDevice = StatePrefix + "device"
	// StateAvailableSince on a pooled data volume is when spotmax first saw it attached to
	// nothing (RFC 3339); spotmax:volume_retention_hours counts from it. Removed once the
	// volume is attached again.
	StateAvailableSince = StatePrefix + "available_since"
	// StateAdoptedBy on a pooled data volume is the adoption in progress: the instance it is
	// being attached to. With StateOwner and StateLeaseUntil on the same volume it is the
	// adoption's claim (one actor at a time, as a replacement journal); removed when the
	// adoption ends.
	StateAdoptedBy = StatePrefix + "adopted_by"
	// StateDiscard on a volume names the instance whose launch created it empty and unused, once
	// a pooled volume is taking its place: it is detached and deleted, and never pooled.
	StateDiscard = StatePrefix + "discard"

	// StateAgent on an instance is the agent's announcement: "running <version> <RFC 3339
	// time>", written at start and refreshed every hour, and "stopped ..." when the agent ends.
	// A proactive replacement waits for a clean release of the data volume only where an agent
	// announced itself running.
	StateAgent = StatePrefix + "agent"
	// StateBlankVolume on an instance names the volume at the group's data device that the agent
	// found blank (no file system signature, mounted nowhere) and holds open exclusively, so that
	// nothing formats or mounts it meanwhile; the agent empties the tag when it lets go. One half
	// of the proof that a launch's fresh volume may be swapped for a pooled one and deleted (the
	// other half is EC2's: created and attached with the instance, from no snapshot).
	StateBlankVolume = StatePrefix + "blank_volume"

	// StateCrossAZ in a replacement's journal is the Availability Zone the replacement was
	// launched in when that is not its data volume's (spotmax:cross_az_move): the volume moves
	// there through a snapshot.
	StateCrossAZ = StatePrefix + "cross_az"
	// StateXAZToken on a cross-AZ move's snapshot and restored volume is "<journal token>/<source
	// volume>": CreateSnapshot takes no client token, so a resumed move finds its snapshot (and
	// volume) by this tag before it creates one.
	StateXAZToken = StatePrefix + "xaz_token"
	// StateXAZFrom on a cross-AZ move's snapshot and restored volume names the source volume.
	StateXAZFrom = StatePrefix + "xaz_from"
	// StateSupersededBy on a data volume names the copy that replaced it in another AZ once that
	// copy was attached and verified. The volume is kept (deleting data is never a default) and
	// never offered to a member by the pool.
	StateSupersededBy = StatePrefix + "superseded_by"
)

// The volume progress tags on an instance (StateVolume, StateMountPath, StateVolumeReleased,
// StateVolumeMounted) hold one entry per data volume, separated by commas, StateVolume and
// StateMountPath in the same order; a group with one data volume writes one entry, as before
// groups had several. Commas separate because a mount path may contain a space (not a comma:
// spotmax:persistence_mount_path is a comma list too).

// SplitStateList returns the entries of a list-valued progress tag; "" is the empty list.
func SplitStateList(v string) []string { return splitList(v) }

// JoinStateList renders the entries of a list-valued progress tag.
func JoinStateList(items []string) string { return strings.Join(items, ",") }

// StateListHas reports whether the list-valued progress tag value v names item.
func StateListHas(v, item string) bool {
	return item != "" && slices.Contains(splitList(v), item)
}
