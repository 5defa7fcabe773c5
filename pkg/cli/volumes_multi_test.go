package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// TestGroupTagSeveralDataDevices: `spotmax group tag` takes a list of data devices and matching
// mount paths (spaces or commas), writes them as comma lists, and refuses a list with the root
// device, a device twice or a mount path count that does not match, naming the tag and value.
func TestGroupTagSeveralDataDevices(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "db", 1, map[string]string{groupconfig.TagGroup: "db"})
	for _, bad := range [][]string{
		{"--persistence-dev", "/dev/sdf,/dev/xvda"},
		{"--persistence-dev", "/dev/sdf,/dev/xvdf"},
		{"--persistence-dev", "/dev/sdf,/dev/sdg", "--persistence-mount-path", "/data"},
	} {
		_, errOut, code := run(t, append([]string{"group", "tag", "db", "--yes"}, bad...)...)
		if code != ExitInvalidConfig || !strings.Contains(errOut, `"db"`) || !strings.Contains(errOut, "spotmax:persistence_") {
			t.Errorf("%v: exit %d, want %d naming the group and the tag: %s", bad, code, ExitInvalidConfig, errOut)
		}
	}
	if _, errOut, code := run(t, "group", "tag", "db", "--persistence-dev", "/dev/sdf /dev/sdg", "--persistence-mount-path", "/data, /log", "--yes"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	g, _ := e.Region().Group("db")
	if v, _ := g.Tag(groupconfig.TagPersistenceDev); v != "/dev/sdf,/dev/sdg" {
		t.Errorf("%s = %q", groupconfig.TagPersistenceDev, v)
	}
	if v, _ := g.Tag(groupconfig.TagPersistenceMountPath); v != "/data,/log" {
		t.Errorf("%s = %q", groupconfig.TagPersistenceMountPath, v)
	}
}

// TestVolumesTwoDevices: `spotmax volumes` lists each data volume with its device; a log volume
// detached from its member waits in the pool as /dev/sdg, and `volumes adopt` attaches it back at
// /dev/sdg, adding it to the member's assignment next to its data volume.
func TestVolumesTwoDevices(t *testing.T) {
	e := newTestEnv(t)
	members := e.CreateGroup(t, simtest.GroupSpec{Name: "db", Spot: true, DataDevice: "/dev/sdf", MoreDataDevices: []string{"/dev/sdg"}, Desired: 2,
		Tags: map[string]string{groupconfig.TagGroup: "db", groupconfig.TagPersistenceDev: "/dev/sdf,/dev/sdg", groupconfig.TagPersistenceMountPath: "/data,/log"}})
	if _, errOut, code := run(t, "run", "--once", "--no-cloudwatch", "--poll-interval", "10ms"); code != 0 {
		t.Fatalf("run --once: exit %d\n%s", code, errOut)
	}
	e.Region().Advance(5 * time.Second)
	list := func() volumesJSON {
		t.Helper()
		out, errOut, code := run(t, "volumes", "-o", "json")
		var got volumesJSON
		if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
			t.Fatalf("volumes -o json: exit %d, %v\n%s%s", code, err, out, errOut)
		}
		return got
	}
	byDev := map[string]int{}
	for _, v := range list().Volumes {
		byDev[v.Device]++
	}
	if byDev["/dev/sdf"] != 2 || byDev["/dev/sdg"] != 2 {
		t.Fatalf("volumes per device %v, want 2 at /dev/sdf and 2 at /dev/sdg", byDev)
	}
	in, _ := e.Region().Instance(members[0])
	var data, logv string
	for _, bd := range in.BlockDevices {
		switch bd.DeviceName {
		case "/dev/sdf":
			data = bd.VolumeID
		case "/dev/sdg":
			logv = bd.VolumeID
		}
	}
	if _, err := e.ec2.DetachVolume(context.Background(), &ec2.DetachVolumeInput{VolumeId: aws.String(logv)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if v, _ := e.Region().Volume(logv); v.State == sim.VolumeAvailable {
			break
		}
		e.Region().Advance(time.Second)
	}
	found := false
	for _, v := range list().Volumes {
		if v.VolumeID == logv {
			found = v.Device == "/dev/sdg" && (v.Status == replace.PoolAvailable)
		}
	}
	if !found {
		t.Fatalf("the detached log volume %s is not listed available at /dev/sdg: %+v", logv, list().Volumes)
	}
	out, errOut, code := run(t, "volumes", "adopt", logv, members[0], "--dry-run")
	if code != 0 || !strings.Contains(out, "at /dev/sdg") {
		t.Fatalf("adopt --dry-run: exit %d: %s%s", code, out, errOut)
	}
	if out, errOut, code = run(t, "volumes", "adopt", logv, members[0], "--yes"); code != 0 || !strings.Contains(out, "attached "+logv+" to "+members[0]+" at /dev/sdg") {
		t.Fatalf("adopt: exit %d: %s%s", code, out, errOut)
	}
	v, _ := e.Region().Volume(logv)
	if v.Attachment == nil || v.Attachment.InstanceID != members[0] || v.Attachment.Device != "/dev/sdg" {
		t.Errorf("log volume attachment %+v, want %s at /dev/sdg", v.Attachment, members[0])
	}
	in, _ = e.Region().Instance(members[0])
	if got := in.Tags[groupconfig.StateVolume]; !groupconfig.StateListHas(got, logv) || groupconfig.StateListHas(got, data) && got != data+","+logv {
		t.Errorf("%s of %s = %q, want it to name %s", groupconfig.StateVolume, members[0], got, logv)
	}
}
