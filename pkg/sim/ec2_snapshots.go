package sim

import (
	"encoding/xml"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// EBS snapshots: CreateSnapshot, DescribeSnapshots, DeleteSnapshot, and CreateVolume with a
// SnapshotId (ec2_volumes.go asks restoreFrom). What AWS documents and the simulator follows:
//
//   - a snapshot starts `pending` with a progress percentage and becomes `completed`; the first
//     snapshot of a volume is a full copy of its written blocks, so its time grows with the data.
//     The simulator has no notion of written blocks: the volume's size stands for its data
//     (Latencies.SnapshotBase + SnapshotPerGiB × size);
//   - a volume can be restored only from a `completed` snapshot, in any AZ of the region, at the
//     snapshot's size or larger; its blocks are loaded lazily, which costs first-read latency
//     but not content: the restored volume carries the snapshot's content marker at once;
//   - a snapshot deleted while pending is deleted once it completes ("the snapshot must complete
//     before the deletion takes effect");
//   - per volume: at most 5 pending snapshots (1 for st1/sc1; ConcurrentSnapshotLimitExceeded),
//     and 15 s between two CreateSnapshot calls on one volume (SnapshotCreationPerVolumeRateExceeded).
//
// Not modelled: incremental snapshots (each is full), `error`/`recoverable` states, AMIs (so no
// InvalidSnapshot.InUse), copies, sharing, archive tiers, Recycle Bin and fast snapshot restore.

// Snapshot states.
const (
	SnapshotPending   = "pending"
	SnapshotCompleted = "completed"
)

// snapshotRateWindow is how long after one CreateSnapshot of a volume another is refused.
const snapshotRateWindow = 15 * time.Second

// Snapshot is an EBS snapshot of a volume.
type Snapshot struct {
	ID          string
	VolumeID    string
	VolumeSize  int32
	VolumeType  string
	State       string
	Description string
	Encrypted   bool
	Started     time.Time
	// Completes is when a pending snapshot becomes completed.
	Completes time.Time
	Tags      Tags
	// Marker is the content marker of the volume when the snapshot was taken: a volume restored
	// from the snapshot carries it.
	Marker string
	// DeleteRequested is set when DeleteSnapshot was called on a pending snapshot.
	DeleteRequested bool
}

// snapState is the snapshots' share of the EC2 service's state.
type snapState struct {
	byID map[string]*Snapshot
	// lastCreate is when CreateSnapshot last succeeded per volume.
	lastCreate map[string]time.Time
	deleted    []string
}

// snaps returns the snapshot state, with the lock held.
func (r *Region) snaps() *snapState {
	st, _ := r.svc["ec2.snapshots"].(*snapState)
	if st == nil {
		st = &snapState{byID: map[string]*Snapshot{}, lastCreate: map[string]time.Time{}}
		r.svc["ec2.snapshots"] = st
	}
	return st
}

// snapshotLatency is how long a snapshot of size GiB stays pending.
func (r *Region) snapshotLatency(size int32) time.Duration {
	return r.lat.SnapshotBase + time.Duration(size)*r.lat.SnapshotPerGiB
}

// progress renders a snapshot's progress as EC2 does ("42%").
func (r *Region) snapshotProgress(s *Snapshot) string {
	if s.State == SnapshotCompleted {
		return "100%"
	}
	total := s.Completes.Sub(s.Started)
	if total <= 0 {
		return "99%"
	}
	p := int(100 * r.now().Sub(s.Started) / total)
	return strconv.Itoa(min(max(p, 0), 99)) + "%"
}

type xmlSnapshot struct {
	SnapshotID   string   `xml:"snapshotId"`
	VolumeID     string   `xml:"volumeId"`
	State        string   `xml:"status"`
	StartTime    string   `xml:"startTime"`
	Progress     string   `xml:"progress"`
	OwnerID      string   `xml:"ownerId"`
	VolumeSize   int32    `xml:"volumeSize"`
	Description  string   `xml:"description"`
	Encrypted    bool     `xml:"encrypted"`
	StorageTier  string   `xml:"storageTier"`
	Tags         []xmlTag `xml:"tagSet>item"`
	CompleteTime string   `xml:"completionTime,omitempty"`
}

func (r *Region) xmlSnapshot(s *Snapshot) xmlSnapshot {
	x := xmlSnapshot{SnapshotID: s.ID, VolumeID: s.VolumeID, State: s.State, StartTime: isoTime(s.Started),
		Progress: r.snapshotProgress(s), OwnerID: r.opts.AccountID, VolumeSize: s.VolumeSize, Description: s.Description,
		Encrypted: s.Encrypted, StorageTier: "standard", Tags: xmlTags(s.Tags)}
	if s.State == SnapshotCompleted {
		x.CompleteTime = isoTime(s.Completes)
	}
	return x
}

// snapshotByID resolves one snapshot id as EC2 does.
func (r *Region) snapshotByID(id string) (*Snapshot, *APIError) {
	if id == "" {
		return nil, errf(CodeMissingParameter, "The request must contain the parameter snapshotId")
	}
	if !validID("snap", id) {
		return nil, errf("InvalidSnapshotID.Malformed", "Invalid id: \"%s\" (expecting \"snap-...\")", id)
	}
	s := r.snaps().byID[id]
	if s == nil {
		return nil, errf("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
	}
	return s, nil
}

// snapshotTags serves CreateTags and DeleteTags on a snapshot (resourceTags).
func (r *Region) snapshotTags(id string) (Tags, string, *APIError) {
	s, err := r.snapshotByID(id)
	if err != nil {
		return nil, "", err
	}
	if s.Tags == nil {
		s.Tags = Tags{}
	}
	return s.Tags, "snapshot", nil
}

func (r *Region) ec2CreateSnapshot(c *call) *APIError {
	p := c.Form
	v, err := r.volumeByID(p.Get("VolumeId"))
	if err != nil {
		return err
	}
	if v.State != VolumeAvailable && v.State != VolumeInUse {
		return errf("IncorrectState", "The volume '%s' is '%s'", v.ID, v.State)
	}
	tags, err := parseTagSpecs(p, "TagSpecification", "snapshot")
	if err != nil {
		return err
	}
	desc := p.Get("Description")
	if len(desc) > 255 {
		return errf(CodeInvalidParameter, "Value (%s) for parameter description is invalid. Length exceeds maximum of 255 characters.", desc)
	}
	st := r.snaps()
	now := r.now().UTC()
	if last, ok := st.lastCreate[v.ID]; ok && now.Sub(last) < snapshotRateWindow {
		return errf("SnapshotCreationPerVolumeRateExceeded",
			"The rate limit for creating concurrent snapshots of an EBS volume has been exceeded. Wait at least 15 seconds between concurrent volume snapshots.")
	}
	limit := 5
	if v.Type == "st1" || v.Type == "sc1" {
		limit = 1
	}
	pending := 0
	for _, s := range st.byID {
		if s.VolumeID == v.ID && s.State == SnapshotPending {
			pending++
		}
	}
	if pending >= limit {
		return errf("ConcurrentSnapshotLimitExceeded",
			"You've reached the limit on the number of concurrent snapshots you can create on the specified volume. Wait until the 'pending' requests have completed.")
	}
	s := &Snapshot{ID: r.newID("snap"), VolumeID: v.ID, VolumeSize: v.Size, VolumeType: v.Type, State: SnapshotPending,
		Description: desc, Encrypted: v.Encrypted, Started: now.Truncate(1e6), Tags: Tags{}, Marker: v.Marker}
	s.Completes = s.Started.Add(r.snapshotLatency(v.Size))
	for k, val := range tags["snapshot"] {
		s.Tags[k] = val
	}
	st.byID[s.ID] = s
	st.lastCreate[v.ID] = now
	r.markTagged(s.ID, tags["snapshot"].Sorted()...)
	id := s.ID
	r.after(s.Completes.Sub(now), func() {
		cur := r.snaps().byID[id]
		if cur == nil || cur.State != SnapshotPending {
			return
		}
		cur.State = SnapshotCompleted
		if cur.DeleteRequested {
			r.removeSnapshot(cur)
		}
	})
	c.writeEC2(struct {
		XMLName xml.Name `xml:"x"`
		xmlSnapshot
	}{xmlSnapshot: r.xmlSnapshot(s)})
	return nil
}

func (r *Region) removeSnapshot(s *Snapshot) {
	st := r.snaps()
	delete(st.byID, s.ID)
	st.deleted = append(st.deleted, s.ID)
}

func snapshotFilters(r *Region) filterFields[*Snapshot] {
	one := func(f func(*Snapshot) string) func(*Snapshot) []string {
		return func(s *Snapshot) []string { return []string{f(s)} }
	}
	return filterFields[*Snapshot]{
		"snapshot-id": one(func(s *Snapshot) string { return s.ID }),
		"volume-id":   one(func(s *Snapshot) string { return s.VolumeID }),
		"status":      one(func(s *Snapshot) string { return s.State }),
		"progress":    one(func(s *Snapshot) string { return r.snapshotProgress(s) }),
		"start-time":  one(func(s *Snapshot) string { return isoTime(s.Started) }),
		"volume-size": one(func(s *Snapshot) string { return strconv.Itoa(int(s.VolumeSize)) }),
		"description": one(func(s *Snapshot) string { return s.Description }),
		"encrypted":   one(func(s *Snapshot) string { return boolStr(s.Encrypted) }),
		"owner-id":    one(func(*Snapshot) string { return r.opts.AccountID }),
		"storage-tier": one(func(*Snapshot) string {
			return "standard"
		}),
	}
}

func (r *Region) ec2DescribeSnapshots(c *call) *APIError {
	p := c.Form
	ids := p.List("SnapshotId")
	maxN, err := maxResults(p, 5, 1000)
	if err != nil {
		return err
	}
	for _, o := range p.List("Owner") {
		if o != "self" && o != r.opts.AccountID && o != "amazon" && o != "aws-marketplace" {
			if _, e := strconv.ParseUint(o, 10, 64); e != nil || len(o) != 12 {
				return errf(CodeInvalidParameter, "Value (%s) for parameter ownerId is invalid.", o)
			}
		}
	}
	var snaps []*Snapshot
	if len(ids) > 0 {
		var missing []string
		for _, id := range ids {
			if !validID("snap", id) {
				return errf("InvalidSnapshotID.Malformed", "Invalid id: \"%s\" (expecting \"snap-...\")", id)
			}
			if s := r.snaps().byID[id]; s != nil {
				snaps = append(snaps, s)
			} else {
				missing = append(missing, id)
			}
		}
		switch {
		case len(missing) == 1:
			return errf("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", missing[0])
		case len(missing) > 1:
			return errf("InvalidSnapshot.NotFound", "The snapshots %s do not exist.", quoteIDs(missing))
		}
	} else {
		for _, s := range r.snaps().byID {
			snaps = append(snaps, s)
		}
		sort.Slice(snaps, func(i, j int) bool {
			if !snaps[i].Started.Equal(snaps[j].Started) {
				return snaps[i].Started.Before(snaps[j].Started)
			}
			return snaps[i].ID < snaps[j].ID
		})
	}
	snaps, err = applyFilters(snaps, parseFilters(p), snapshotFilters(r), func(s *Snapshot) Tags { return r.filterTags(s.ID, s.Tags) })
	if err != nil {
		return err
	}
	start, end, next, err := page(len(snaps), maxN, p.Get("NextToken"), 1000, 1000)
	if err != nil {
		return err
	}
	out := struct {
		XMLName   xml.Name      `xml:"x"`
		Snapshots []xmlSnapshot `xml:"snapshotSet>item"`
		NextToken string        `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, s := range snaps[start:end] {
		out.Snapshots = append(out.Snapshots, r.xmlSnapshot(s))
	}
	c.writeEC2(out)
	return nil
}

func (r *Region) ec2DeleteSnapshot(c *call) *APIError {
	s, err := r.snapshotByID(c.Form.Get("SnapshotId"))
	if err != nil {
		return err
	}
	if s.State == SnapshotPending {
		// "Although you can delete a snapshot that is still in progress, the snapshot must
		// complete before the deletion takes effect."
		s.DeleteRequested = true
	} else {
		r.removeSnapshot(s)
	}
	writeReturnTrue(c)
	return nil
}

// restoreFrom checks a CreateVolume from snapshot id and returns the snapshot: it must exist, be
// completed, and fit in size GiB (when the request gives a size).
func (r *Region) restoreFrom(id string, size int64, hasSize bool) (*Snapshot, *APIError) {
	s, err := r.snapshotByID(id)
	if err != nil {
		return nil, err
	}
	if s.State != SnapshotCompleted || s.DeleteRequested {
		return nil, errf("IncorrectState", "Snapshot is in invalid state - %s", s.State)
	}
	if hasSize && size < int64(s.VolumeSize) {
		return nil, errf(CodeInvalidParameter, "Volume of size %dGB is smaller than snapshot '%s', expect size >= %dGB", size, s.ID, s.VolumeSize)
	}
	return s, nil
}

// Snapshot returns a copy of a snapshot's state.
func (r *Region) Snapshot(id string) (Snapshot, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.snaps().byID[id]
	if !ok {
		return Snapshot{}, false
	}
	c := *s
	c.Tags = s.Tags.Clone()
	return c, true
}

// Snapshots returns copies of every snapshot, oldest first.
func (r *Region) Snapshots() []Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Snapshot
	for _, s := range r.snaps().byID {
		c := *s
		c.Tags = s.Tags.Clone()
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.Before(out[j].Started)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// DeletedSnapshots returns the ids of the snapshots deleted so far, in order.
func (r *Region) DeletedSnapshots() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.snaps().deleted...)
}

// String renders a snapshot for test failures.
func (s Snapshot) String() string {
	return fmt.Sprintf("%s of %s (%d GiB, %s)", s.ID, s.VolumeID, s.VolumeSize, s.State)
}
