package controller_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// TestControllerReHomesALostMembersVolume: an instance lost without spotmax hearing of it leaves
// its data volume in the pool; once the member the group launched instead has its agent's blank
// report, the reconcile adopts the volume there (and deletes the blank one) without an operator.
func TestControllerReHomesALostMembersVolume(t *testing.T) {
	e := newEnv(t, 1000)
	ids := e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 2, Max: 2, Tags: tags("web", nil)})
	r := e.Region()
	rec := &recorder{}
	c := e.controller(rec)
	ctx := context.Background()
	if _, err := c.Reconcile(ctx); err != nil { // first sight: volumes kept and marked
		t.Fatal(err)
	}
	in, _ := r.Instance(ids[0])
	var data string
	for _, bd := range in.BlockDevices {
		if bd.DeviceName == "/dev/sdf" {
			data = bd.VolumeID
		}
	}
	fresh := loseFirstMember(ctx, t, e, "web", ids)
	if _, err := c.Reconcile(ctx); err != nil { // no agent report yet: the volume waits
		t.Fatal(err)
	}
	c.Wait()
	if v, _ := r.Volume(data); v.Attachment != nil {
		t.Fatalf("data volume %s adopted into %s without the agent's blank report", data, v.Attachment.InstanceID)
	}
	fi, _ := r.Instance(fresh)
	var freshVol string
	for _, bd := range fi.BlockDevices {
		if bd.DeviceName == "/dev/sdf" {
			freshVol = bd.VolumeID
		}
	}
	if _, err := e.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{fresh}, Tags: []ec2types.Tag{
		{Key: aws.String(groupconfig.StateBlankVolume), Value: aws.String(freshVol)}}}); err != nil {
		t.Fatal(err)
	}
	r.Advance(10 * time.Second)
	for i := 0; i < 3; i++ {
		if _, err := c.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		c.Wait()
	}
	v, _ := r.Volume(data)
	if v.Attachment == nil || v.Attachment.InstanceID != fresh || v.Attachment.Device != "/dev/sdf" {
		t.Fatalf("data volume %s not re-homed into %s at /dev/sdf: %+v", data, fresh, v.Attachment)
	}
	if fi, _ = r.Instance(fresh); fi.Tags[groupconfig.StateVolume] != data || fi.Tags[groupconfig.StateMountPath] != "/data" {
		t.Errorf("member %s is assigned %q at %q, want %s at /data for its agent", fresh, fi.Tags[groupconfig.StateVolume], fi.Tags[groupconfig.StateMountPath], data)
	}
	deleted := false
	for _, d := range r.DeletedVolumes() {
		if d.VolumeID == data {
			t.Errorf("data volume %s was deleted", data)
		}
		deleted = deleted || d.VolumeID == freshVol
	}
	if !deleted {
		t.Errorf("the blank fresh volume %s was not deleted", freshVol)
	}
	if got := rec.count(metrics.DataVolumeOrphaned); got != 1 {
		t.Errorf("DataVolumeOrphaned = %d, want 1 (the wait before the agent's report, once)", got)
	}
}

// TestControllerReHomesALostMembersTwoVolumes: the same with data and log volumes
// (persistence_dev=/dev/sdf,/dev/sdg): the reconciles adopt each of the lost member's volumes at
// its own device into the member the group launched instead (one per pass), delete both blank
// fresh volumes, and assign both for its agent with their mount paths.
func TestControllerReHomesALostMembersTwoVolumes(t *testing.T) {
	e := newEnv(t, 1000)
	devs := []string{"/dev/sdf", "/dev/sdg"}
	ids := e.CreateGroup(t, simtest.GroupSpec{Name: "db", Spot: true, DataDevice: devs[0], MoreDataDevices: devs[1:], Desired: 2, Max: 2,
		Tags: tags("db", map[string]string{groupconfig.TagPersistenceDev: "/dev/sdf,/dev/sdg", groupconfig.TagPersistenceMountPath: "/data,/log"})})
	r := e.Region()
	c := e.controller(&recorder{})
	ctx := context.Background()
	if _, err := c.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	volsAt := func(id string) map[string]string {
		in, _ := r.Instance(id)
		out := map[string]string{}
		for _, bd := range in.BlockDevices {
			out[bd.DeviceName] = bd.VolumeID
		}
		return out
	}
	lost := volsAt(ids[0])
	fresh := loseFirstMember(ctx, t, e, "db", ids)
	freshVols := volsAt(fresh)
	if _, err := e.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{fresh}, Tags: []ec2types.Tag{
		{Key: aws.String(groupconfig.StateBlankVolume), Value: aws.String(freshVols[devs[0]] + " " + freshVols[devs[1]])}}}); err != nil {
		t.Fatal(err)
	}
	r.Advance(10 * time.Second)
	for i := 0; i < 5; i++ {
		if _, err := c.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		c.Wait()
		r.Advance(5 * time.Second)
	}
	for _, dev := range devs {
		v, _ := r.Volume(lost[dev])
		if v.Attachment == nil || v.Attachment.InstanceID != fresh || v.Attachment.Device != dev {
			t.Errorf("data volume %s (%s) not re-homed into %s at %s: %+v", lost[dev], dev, fresh, dev, v.Attachment)
		}
	}
	fi, _ := r.Instance(fresh)
	ids2 := groupconfig.SplitStateList(fi.Tags[groupconfig.StateVolume])
	paths := groupconfig.SplitStateList(fi.Tags[groupconfig.StateMountPath])
	if len(ids2) != 2 || len(paths) != 2 {
		t.Fatalf("member %s is assigned %q at %q, want both volumes with their paths", fresh, fi.Tags[groupconfig.StateVolume], fi.Tags[groupconfig.StateMountPath])
	}
	for i, id := range ids2 {
		want := map[string]string{lost[devs[0]]: "/data", lost[devs[1]]: "/log"}[id]
		if want == "" || paths[i] != want {
			t.Errorf("assignment entry %d: %s at %s, want a lost volume at its own path", i, id, paths[i])
		}
	}
	deleted := map[string]bool{}
	for _, d := range r.DeletedVolumes() {
		deleted[d.VolumeID] = true
	}
	for _, dev := range devs {
		if deleted[lost[dev]] {
			t.Errorf("data volume %s was deleted", lost[dev])
		}
		if !deleted[freshVols[dev]] {
			t.Errorf("the blank fresh volume %s at %s was not deleted", freshVols[dev], dev)
		}
	}
}

// loseFirstMember terminates ids[0] of group without spotmax hearing of it (an unheard
// interruption) and returns the member the group launched in its place, once InService.
func loseFirstMember(ctx context.Context, t *testing.T, e *env, group string, ids []string) string {
	t.Helper()
	r := e.Region()
	if _, err := e.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids[:1]}); err != nil {
		t.Fatal(err)
	}
	r.Advance(2 * time.Minute)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("the group launched no member in place of the lost one")
		}
		g, _ := r.Group(group)
		for _, m := range g.Members {
			if !slices.Contains(ids, m.InstanceID) && m.LifecycleState == "InService" {
				return m.InstanceID
			}
		}
		r.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
}
