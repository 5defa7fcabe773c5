package replace

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// Journal is a replacement in progress, as journaled in spotmax:state:* tags on its old instance.
// It is the one typed view of those tags: load reads them, set writes the changed ones in one
// CreateTags call, clear removes them all (journalKeys).
//
// Only spotmax writes these keys (the agent's IAM role may not; docs/iam.md): they are what the
// controller trusts. Even so, everything a journal names is checked before it is acted on
// (verifyReplacement).
type Journal struct {
	Group       string `json:"group"`
	Old         string `json:"old"`
	Replacement string `json:"replacement,omitempty"`
	// Volumes are the data volumes the replacement moves, each with its device, recorded at
	// start (groupconfig.StateJournalVolume); MountPath is not journaled (the group's tag says).
	Volumes []DataVolume `json:"volumes,omitempty"`
	Phase   Phase        `json:"phase"`
	Reason  Reason       `json:"reason"`
	Started time.Time    `json:"started"`
	// Token is the idempotency token of the launch (one per option: Token-i).
	Token string `json:"-"`
	// Options are the replacement's journaled options (optForceDetach, optVolumeFirst).
	Options []string `json:"-"`
	// Desired is the group's desired capacity before the replacement joined; -1 when not yet
	// journaled.
	Desired int `json:"-"`
	// Retiring is set while a proactive retirement is announced to the agent.
	Retiring string `json:"-"`
	// Owner is the actor driving the journal and LeaseUntil when its lease ends (lease.go).
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// CrossAZ is the AZ the replacement was launched in when that is not the data volume's: the
	// volume moves there through a snapshot (crossaz.go).
	CrossAZ string `json:"cross_az,omitempty"`
	// TakeBack is how the extra member is taken back when the old instance left the group
	// without being detached (takeback.go): a member's id, or "desired:N".
	TakeBack string `json:"take_back,omitempty"`
}

// journalKeys are every tag of a journal on the old instance, cleared together when the
// replacement ends. The agent's own keys (volume_released, volume_mounted, notice) are not
// journal keys, but the release report is cleared with the journal so a later replacement of the
// same instance does not trust a stale one.
var journalKeys = []string{
	groupconfig.StatePhase, groupconfig.StateJournalGroup, groupconfig.StateReason, groupconfig.StateStarted,
	groupconfig.StateToken, groupconfig.StateOptions, groupconfig.StateReplacement, groupconfig.StateRetiring,
	groupconfig.StateDesired, groupconfig.StateOwner, groupconfig.StateLeaseUntil, groupconfig.StateJournalVolume,
	groupconfig.StateCrossAZ, groupconfig.StateTakeBack,
}

// loadJournal reads the journal of instance old from its tags. A zero Phase means no journal.
func loadJournal(old string, tags []ec2types.Tag) Journal {
	t := stateTags(tags)
	j := Journal{Old: old, Group: t[groupconfig.StateJournalGroup], Replacement: t[groupconfig.StateReplacement], Volumes: parseJournalVolumes(t[groupconfig.StateJournalVolume]),
		Phase: Phase(t[groupconfig.StatePhase]), Reason: Reason(t[groupconfig.StateReason]), Token: t[groupconfig.StateToken],
		Options: strings.Fields(t[groupconfig.StateOptions]), Retiring: t[groupconfig.StateRetiring],
		Owner: t[groupconfig.StateOwner], Desired: -1, CrossAZ: t[groupconfig.StateCrossAZ], TakeBack: t[groupconfig.StateTakeBack]}
	j.Started, _ = time.Parse(time.RFC3339, t[groupconfig.StateStarted])
	j.LeaseUntil, _ = time.Parse(time.RFC3339Nano, t[groupconfig.StateLeaseUntil])
	if d, err := strconv.Atoi(t[groupconfig.StateDesired]); err == nil && d >= 0 {
		j.Desired = d
	}
	return j
}

// tags renders the journal's set fields as tags.
func (j Journal) tags() map[string]string {
	out := map[string]string{}
	put := func(k, v string) {
		if v != "" {
			out[k] = v
		}
	}
	put(groupconfig.StatePhase, string(j.Phase))
	put(groupconfig.StateJournalGroup, j.Group)
	put(groupconfig.StateReason, string(j.Reason))
	if !j.Started.IsZero() {
		out[groupconfig.StateStarted] = j.Started.UTC().Format(time.RFC3339)
	}
	put(groupconfig.StateToken, j.Token)
	put(groupconfig.StateOptions, strings.Join(j.Options, " "))
	put(groupconfig.StateReplacement, j.Replacement)
	put(groupconfig.StateJournalVolume, formatJournalVolumes(j.Volumes))
	put(groupconfig.StateRetiring, j.Retiring)
	if j.Desired >= 0 {
		out[groupconfig.StateDesired] = strconv.Itoa(j.Desired)
	}
	put(groupconfig.StateOwner, j.Owner)
	put(groupconfig.StateCrossAZ, j.CrossAZ)
	put(groupconfig.StateTakeBack, j.TakeBack)
	if !j.LeaseUntil.IsZero() {
		out[groupconfig.StateLeaseUntil] = j.LeaseUntil.UTC().Format(time.RFC3339Nano)
	}
	return out
}

// formatJournalVolumes renders the journal's data volumes as "device=volume" pairs separated by
// spaces, e.g. "/dev/sdf=vol-0a /dev/sdg=vol-0b": the device travels with each volume, so a
// resume moves each one to its own device even if the group's tags changed meanwhile. Eight
// pairs fit EC2's 256-character tag value (groupconfig.MaxDataDevices).
func formatJournalVolumes(vs []DataVolume) string {
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		if v.Device == "" {
			parts = append(parts, v.ID)
			continue
		}
		parts = append(parts, v.Device+"="+v.ID)
	}
	return strings.Join(parts, " ")
}

// parseJournalVolumes reads what formatJournalVolumes wrote. A bare volume id is a journal written
// before groups had several data volumes: its device is the group's one data device, which the
// plan fills in.
func parseJournalVolumes(s string) []DataVolume {
	var out []DataVolume
	for _, f := range strings.Fields(s) {
		if dev, id, ok := strings.Cut(f, "="); ok {
			out = append(out, DataVolume{ID: id, Device: dev})
			continue
		}
		out = append(out, DataVolume{ID: f})
	}
	return out
}

// VolumeIDs returns the ids of the journal's data volumes, in order.
func (j Journal) VolumeIDs() []string { return volumeIDs(j.Volumes) }

func volumeIDs(vs []DataVolume) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.ID)
	}
	return out
}

// has reports whether the journal carries option o.
func (j Journal) has(o string) bool { return slices.Contains(j.Options, o) }

// set applies change to the run's journal and writes the tags that changed, in one CreateTags
// call; the in-memory journal changes only once AWS has them.
func (r *run) set(ctx context.Context, what string, change func(*Journal)) error {
	next := r.journal
	next.Options = slices.Clone(r.journal.Options)
	next.Volumes = slices.Clone(r.journal.Volumes)
	change(&next)
	before, after := r.journal.tags(), next.tags()
	diff := map[string]string{}
	for k, v := range after {
		if before[k] != v {
			diff[k] = v
		}
	}
	var gone []string
	for k := range before {
		if _, ok := after[k]; !ok {
			gone = append(gone, k)
		}
	}
	if len(diff) > 0 {
		if err := r.w.tagResource(ctx, r.req.InstanceID, diff); err != nil {
			return fmt.Errorf("journaling %s on %s: %w", what, r.req.InstanceID, err)
		}
	}
	if len(gone) > 0 {
		sort.Strings(gone)
		if err := r.w.untagResource(ctx, r.req.InstanceID, gone...); err != nil {
			return fmt.Errorf("journaling %s on %s: %w", what, r.req.InstanceID, err)
		}
	}
	r.journal = next
	return nil
}

// clearJournal removes every journal tag from an instance, in one call.
func (w *Workflow) clearJournal(ctx context.Context, id string) error {
	return w.untagResource(ctx, id, append(slices.Clone(journalKeys), groupconfig.StateVolumeReleased)...)
}

// InFlight lists every journaled replacement in the region, in paged DescribeInstances calls
// filtered on the journal tag, oldest first. The controller resumes them; `spotmax replace
// --resume` lists them.
func (w *Workflow) InFlight(ctx context.Context) ([]Journal, error) {
	in := &ec2.DescribeInstancesInput{
		MaxResults: aws.Int32(1000),
		Filters:    []ec2types.Filter{{Name: aws.String("tag-key"), Values: []string{groupconfig.StatePhase}}},
	}
	var out []Journal
	p := ec2.NewDescribeInstancesPaginator(w.EC2, in)
	for p.HasMorePages() {
		var page *ec2.DescribeInstancesOutput
		err := w.call(ctx, func(ctx context.Context) (err error) {
			page, err = p.NextPage(ctx)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("listing journaled replacements: %w", err)
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				if j := loadJournal(aws.ToString(inst.InstanceId), inst.Tags); j.Phase != "" {
					out = append(out, j)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.Before(out[j].Started)
		}
		return out[i].Old < out[j].Old
	})
	return out, nil
}
