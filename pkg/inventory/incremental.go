package inventory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// Defaults of Tracker's full resync.
const (
	DefaultFullEvery = 30
	DefaultFullAfter = 10 * time.Minute
)

// VolatileTags are the instance tag keys that spotmax acts on and that change during an
// instance's life: a journal (the old instance's phase) and an agent's relayed notice. An
// instance carrying one is described at every listing; a Tracker's other tags are as of the
// instance's last describe (see Tracker).
var VolatileTags = []string{groupconfig.StatePhase, groupconfig.StateNotice}

// SettleWindow is how long after its launch an instance is described at every listing: a
// replacement receives its data volume and the agent's tags in its first minutes, and not every
// step of that is visible to a filter.
const SettleWindow = 15 * time.Minute

const settle = SettleWindow

// volatileStates are the EC2 states of an instance that is not simply running: they change, and
// "terminated" must be seen to drop the instance's EC2 view as a full listing does.
var volatileStates = []string{"pending", "stopping", "stopped", "shutting-down", "terminated"}

// Tracker lists the spotmax groups with their members like Lister.List(ctx,
// Options{Members: true}), but describes in EC2 only what can have changed since its last
// listing. What never changes for an instance — launch time, market, type, AZ, subnet, private
// IP, root device, the tags it was launched with — is kept from its first describe. Each listing
// reads:
//
//   - the groups and their membership, lifecycle and health (Auto Scaling pages, as List);
//   - the group instances that are not running (one DescribeInstances filtered on state,
//     including terminated ones, whose EC2 view a full listing drops);
//   - the instances carrying a VolatileTags key (one filtered DescribeInstances);
//   - by instance-id filter, members not seen yet, members that changed group, members that were
//     volatile at the previous listing (to see them settle), and ones Forget named.
//
// A member EC2 does not show yet (it answers NotFound for a few seconds after a launch) keeps
// its Auto Scaling view, as in a full listing, and is described again at the next listing.
// Instances gone from every group are evicted. Every FullEvery listings, or FullAfter after the
// last full one, the listing is a full List that replaces everything kept: it bounds the drift
// of what a filter cannot see, such as a tag an operator changed (other than VolatileTags) or a
// data volume detached by hand. A listing is full as well when it would describe by id more
// members than a full listing's pages hold (cheaperInFull). Filters of freshly written tags lag in EC2, so a new
// VolatileTags value can show one listing late.
//
// A Tracker is safe for concurrent use; listings are serialised.
type Tracker struct {
	Lister *Lister
	// FullEvery makes every FullEvery-th listing a full one; default DefaultFullEvery. 1 lists
	// in full every time (the behaviour without a Tracker).
	FullEvery int
	// FullAfter makes a listing full when the last full one is older; default DefaultFullAfter.
	FullAfter time.Duration
	// Now is the clock of FullAfter; default time.Now.
	Now func() time.Time
	// DecodeEveryPage turns off the cache of Auto Scaling pages (pageCache) that lets a
	// listing skip decoding a page identical to one of the previous listing.
	DecodeEveryPage bool

	mu       sync.Mutex
	known    map[string]*known // instance id → its EC2 view at its last describe
	watch    map[string]bool   // volatile at the last listing: describe again
	forget   map[string]bool
	since    int // listings since the last full one
	lastFull time.Time
	pages    pageCache
	stats    TrackerStats
}

type known struct {
	group string // the group it was a member of
	inst  Instance
}

// TrackerStats count a Tracker's work since it was made.
type TrackerStats struct {
	Listings, Full int
	// FullByCost counts the full listings among Full that were cheaper than describing by id
	// the members that had to be described again (cheaperInFull).
	FullByCost int
	// Described counts instances described by id (new, changed, volatile).
	Described int
	// Pending counts members EC2 did not show yet (retried at the next listing).
	Pending int
	// Known is the number of instances kept after the last listing.
	Known int
	// PagesDecoded and PagesReused count Auto Scaling pages decoded and taken from the cache.
	PagesDecoded, PagesReused int
}

// Stats returns the counters.
func (t *Tracker) Stats() TrackerStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stats
	t.pages.mu.Lock()
	st.PagesDecoded, st.PagesReused = t.pages.miss, t.pages.hits
	t.pages.mu.Unlock()
	return st
}

// Forget makes the next listing describe these instances again: the caller changed something a
// Tracker keeps (e.g. DeleteOnTermination of a volume).
func (t *Tracker) Forget(ids ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.forget == nil {
		t.forget = map[string]bool{}
	}
	for _, id := range ids {
		t.forget[id] = true
	}
}

// Resync makes the next listing a full one.
func (t *Tracker) Resync() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.known = nil
}

// List returns every spotmax group ordered by name with its members, as Lister.List(ctx,
// Options{Members: true}) would.
func (t *Tracker) List(ctx context.Context) ([]*Group, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	every, after := t.FullEvery, t.FullAfter
	if every <= 0 {
		every = DefaultFullEvery
	}
	if after <= 0 {
		after = DefaultFullAfter
	}
	var opts []func(*autoscaling.Options)
	if !t.DecodeEveryPage {
		t.pages.rotate()
		opts = append(opts, t.pages.option)
	}
	groups, err := t.Lister.groups(ctx, nil, opts...)
	if err != nil {
		return nil, err
	}
	t.stats.Listings++
	due := t.known == nil || t.since+1 >= every || now().Sub(t.lastFull) >= after
	if byCost := !due && t.cheaperInFull(groups); due || byCost {
		if err := t.Lister.members(ctx, groups); err != nil {
			return nil, err
		}
		t.remember(groups, nil, now())
		t.since, t.lastFull = 0, now()
		t.stats.Full++
		if byCost {
			t.stats.FullByCost++
		}
		return groups, nil
	}
	fresh, volatile, err := t.volatile(ctx)
	if err != nil {
		return nil, err
	}
	var need []string
	needed := map[string]bool{}
	for _, g := range groups {
		for _, m := range g.Members {
			if _, ok := fresh[m.ID]; ok {
				continue
			}
			k := t.known[m.ID]
			if k == nil || k.group != g.Name || t.watch[m.ID] || volatile[m.ID] || t.forget[m.ID] {
				need = append(need, m.ID)
				needed[m.ID] = true
			}
		}
	}
	if err := t.describe(ctx, need, fresh); err != nil {
		return nil, err
	}
	t.stats.Described += len(need)
	t.fill(groups, fresh, needed, newStrs())
	t.remember(groups, volatile, now())
	t.since++
	return groups, nil
}

// cheaperInFull reports whether describing again the members a listing must describe by id
// (new, moved, volatile at the last listing, forgotten) takes more calls than a full listing's
// pages: e.g. a fleet launched less than SettleWindow ago, or one whose data volumes were all
// Forgotten at once. Both return the same groups; this only picks the one with fewer calls.
func (t *Tracker) cheaperInFull(groups []*Group) bool {
	need, total := 0, 0
	for _, g := range groups {
		for _, m := range g.Members {
			total++
			if k := t.known[m.ID]; k == nil || k.group != g.Name || t.watch[m.ID] || t.forget[m.ID] {
				need++
			}
		}
	}
	byID := (need + namesPerFilter - 1) / namesPerFilter
	full := (total + instancesPerPage - 1) / instancesPerPage
	return byID > full+2 // +2: the incremental listing's two filtered describes
}

// volatile describes the group instances that are not running and the instances carrying a
// VolatileTags key. It returns their EC2 views, nil for terminated ones, and the ids to describe
// again at the next listing (the returned ones and the replacements their journals name).
func (t *Tracker) volatile(ctx context.Context) (map[string]*ec2types.Instance, map[string]bool, error) {
	fresh := map[string]*ec2types.Instance{}
	volatile := map[string]bool{}
	queries := []struct {
		what    string
		filters []ec2types.Filter
	}{
		{"group instances that are not running", []ec2types.Filter{
			{Name: aws.String("tag-key"), Values: []string{TagASGName}},
			{Name: aws.String("instance-state-name"), Values: volatileStates}}},
		{"instances with spotmax journals or notices", []ec2types.Filter{
			{Name: aws.String("tag-key"), Values: VolatileTags}}},
	}
	for _, q := range queries {
		err := t.Lister.describePages(ctx, q.filters, func(in *ec2types.Instance) {
			id := aws.ToString(in.InstanceId)
			volatile[id] = true
			for _, tag := range in.Tags {
				if aws.ToString(tag.Key) == groupconfig.StateReplacement && aws.ToString(tag.Value) != "" {
					volatile[aws.ToString(tag.Value)] = true // receives the data volume
				}
			}
			if in.State != nil && in.State.Name == ec2types.InstanceStateNameTerminated {
				fresh[id] = nil
				return
			}
			fresh[id] = in
		})
		if err != nil {
			return nil, nil, fmt.Errorf("describing %s: %w", q.what, err)
		}
	}
	return fresh, volatile, nil
}

// describe adds the EC2 views of ids to fresh, with DescribeInstances calls filtered on up to
// namesPerFilter instance ids (a filter, unlike InstanceIds, does not fail the call for an id
// EC2 does not show yet).
func (t *Tracker) describe(ctx context.Context, ids []string, fresh map[string]*ec2types.Instance) error {
	for start := 0; start < len(ids); start += namesPerFilter {
		end := min(start+namesPerFilter, len(ids))
		err := t.Lister.describePages(ctx, []ec2types.Filter{
			{Name: aws.String("instance-id"), Values: ids[start:end]},
			{Name: aws.String("instance-state-name"), Values: liveStates},
		}, func(in *ec2types.Instance) { fresh[aws.ToString(in.InstanceId)] = in })
		if err != nil {
			return fmt.Errorf("describing %d instances: %w", end-start, err)
		}
	}
	return nil
}

// fill gives each member its EC2 view: fresh when described now, else the one kept unless it
// had to be described again (needed) and EC2 did not show it.
func (t *Tracker) fill(groups []*Group, fresh map[string]*ec2types.Instance, needed map[string]bool, s *strs) {
	for _, g := range groups {
		for i := range g.Members {
			m := &g.Members[i]
			if in, ok := fresh[m.ID]; ok {
				if in != nil {
					fillInstance(m, *in, s)
				}
				continue
			}
			if k := t.known[m.ID]; k != nil && !needed[m.ID] {
				k.inst.copyEC2To(m)
			}
		}
		sortMembers(g)
	}
}

// remember keeps the EC2 view of every member that has one and drops every other instance. The
// volatile ones (those given, the members not running or carrying a VolatileTags key, the
// replacements their journals name, members launched less than SettleWindow ago, and members
// without their group's data volume) are described again at the next listing.
func (t *Tracker) remember(groups []*Group, volatile map[string]bool, now time.Time) {
	if volatile == nil {
		volatile = map[string]bool{}
	}
	next := make(map[string]*known, len(t.known))
	pending := 0
	for _, g := range groups {
		for _, m := range g.Members {
			if m.State == "" { // EC2 does not show it (yet): describe it next time
				pending++
				continue
			}
			if m.State != "running" {
				volatile[m.ID] = true
			}
			for _, k := range VolatileTags {
				if _, ok := m.Tags[k]; ok {
					volatile[m.ID] = true
				}
			}
			if r := m.Tags[groupconfig.StateReplacement]; r != "" {
				volatile[r] = true
			}
			if now.Sub(m.LaunchTime) < settle {
				volatile[m.ID] = true // a new instance: its data volume and tags are still being set
			}
			for _, d := range g.Config.DataDevices() {
				if _, ok := m.VolumeAt(d.Device); !ok {
					volatile[m.ID] = true // a replacement waiting for its data volume
				}
			}
			k := &known{group: g.Name}
			m.copyEC2To(&k.inst)
			k.inst.Tags = m.Tags // never modified in place: fillInstance makes a new map (shared by same-tag instances)
			next[m.ID] = k
		}
	}
	t.known, t.watch, t.forget = next, volatile, nil
	t.stats.Pending += pending
	t.stats.Known = len(next)
}

// copyEC2To copies the fields EC2 describes into m, sharing the tag map and volume slice (which
// listings never modify in place).
func (i *Instance) copyEC2To(m *Instance) {
	m.Type, m.AZ, m.SubnetID, m.PrivateIP = i.Type, i.AZ, i.SubnetID, i.PrivateIP
	m.State, m.RootDevice, m.Market, m.LaunchTime = i.State, i.RootDevice, i.Market, i.LaunchTime
	m.Tags, m.Volumes = i.Tags, i.Volumes
}

// describePages runs a paged DescribeInstances with filters and calls fn for each instance.
func (l *Lister) describePages(ctx context.Context, filters []ec2types.Filter, fn func(*ec2types.Instance)) error {
	in := &ec2.DescribeInstancesInput{MaxResults: aws.Int32(instancesPerPage), Filters: filters}
	p := ec2.NewDescribeInstancesPaginator(l.EC2, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for r := range page.Reservations {
			for i := range page.Reservations[r].Instances {
				fn(&page.Reservations[r].Instances[i])
			}
		}
	}
	return nil
}
