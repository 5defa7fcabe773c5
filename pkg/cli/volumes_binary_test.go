package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// awsCmd runs the AWS CLI against the test's simulated region ($SPOTMAX_AWS_CLI, else aws on
// PATH; missing, the test skips unless SPOTMAX_REQUIRE_ASSETS=1 makes it a failure).
type awsCmd struct {
	t   *testing.T
	bin string
	env []string
	url string
}

func newAWSCmd(t *testing.T, e *testEnv) *awsCmd {
	t.Helper()
	bin := os.Getenv("SPOTMAX_AWS_CLI")
	if bin == "" {
		p, err := exec.LookPath("aws")
		if err != nil {
			if os.Getenv("SPOTMAX_REQUIRE_ASSETS") == "1" {
				t.Fatal("the AWS CLI (aws) is not on PATH and SPOTMAX_REQUIRE_ASSETS=1: install the Debian package awscli")
			}
			t.Skip("the AWS CLI (aws) is not on PATH; install the Debian package awscli")
		}
		bin = p
	}
	dir := t.TempDir()
	var vars []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			vars = append(vars, kv)
		}
	}
	vars = append(vars, "AWS_ACCESS_KEY_ID=AKIDSIMCLI", "AWS_SECRET_ACCESS_KEY=secret", "AWS_DEFAULT_REGION="+e.Region().Name(),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")
	return &awsCmd{t: t, bin: bin, env: vars, url: e.URL()}
}

func (a *awsCmd) run(out any, args ...string) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.bin, append([]string{"--endpoint-url", a.url, "--output", "json"}, args...)...)
	cmd.Env = a.env
	var o, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &se
	if err := cmd.Run(); err != nil {
		a.t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, se.String())
	}
	if out != nil {
		if err := json.Unmarshal(o.Bytes(), out); err != nil {
			a.t.Fatalf("aws %s: decoding: %v\n%s", strings.Join(args, " "), err, o.String())
		}
	}
}

// TestBinaryVolumePool is issue 12's first acceptance test through the real spotmax binary and
// the AWS CLI: after a scale-in, a scale-out, the group replacing an instance on its own and an
// interruption spotmax never heard of, every data volume that existed is attached to a running
// member (or, with fewer members than volumes, available and listed by `spotmax volumes`), and no
// member whose agent reports its fresh volume blank keeps it while a pooled volume waits.
//
// It runs with one data volume per member, then with data and log volumes
// (persistence_dev=/dev/sdf,/dev/sdg): every volume is kept, pooled and re-homed at its own
// device; a member gets one pooled volume per reconcile, so each step runs one pass per device.
func TestBinaryVolumePool(t *testing.T) {
	bin := buildSpotmax(t)
	t.Run("one device", func(t *testing.T) { testBinaryVolumePool(t, bin, []string{"/dev/sdf"}) })
	t.Run("two devices", func(t *testing.T) { testBinaryVolumePool(t, bin, []string{"/dev/sdf", "/dev/sdg"}) })
}

func testBinaryVolumePool(t *testing.T, bin string, devs []string) {
	e := newTestEnv(t)
	cli := newAWSCmd(t, e)
	r := e.Region()
	tags := map[string]string{groupconfig.TagGroup: "web", groupconfig.TagPersistenceDev: strings.Join(devs, ","),
		groupconfig.TagPersistenceMountPath: strings.Join([]string{"/data", "/log"}[:len(devs)], ",")}
	e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: devs[0], MoreDataDevices: devs[1:], Desired: 3, Tags: tags})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	once := func() {
		t.Helper()
		r.Advance(5 * time.Second) // past EC2's tag visibility
		if x := runBin(ctx, bin, "run", "--once", "--no-cloudwatch", "--poll-interval", "20ms"); x.code != 0 {
			t.Fatalf("spotmax run --once: exit %d\n%s", x.code, x.stderr)
		}
		r.Advance(5 * time.Second)
	}
	// settle runs one pass per data device: a member lacking several volumes gets one per pass.
	settle := func() {
		t.Helper()
		for range devs {
			once()
		}
	}
	pool := func() map[string]replace.PoolVolume {
		t.Helper()
		x := runBin(ctx, bin, "volumes", "--group", "web", "-o", "json")
		if x.code != 0 {
			t.Fatalf("spotmax volumes: exit %d\n%s", x.code, x.stderr)
		}
		var out volumesJSON
		if err := json.Unmarshal([]byte(x.stdout), &out); err != nil {
			t.Fatalf("spotmax volumes -o json: %v\n%s", err, x.stdout)
		}
		m := map[string]replace.PoolVolume{}
		for _, v := range out.Volumes {
			m[v.VolumeID] = v
		}
		return m
	}
	members := func(n int) map[string]bool {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			g, _ := r.Group("web")
			ids := map[string]bool{}
			for _, m := range g.Members {
				if in, ok := r.Instance(m.InstanceID); ok && m.LifecycleState == "InService" && in.State == sim.StateRunning {
					ids[m.InstanceID] = true
				}
			}
			if len(ids) == n && len(g.Members) == n {
				return ids
			}
			if time.Now().After(deadline) {
				for _, a := range g.Activities {
					t.Logf("activity: %s: %s", a.Description, a.Cause)
				}
				t.Fatalf("group web never had %d InService members (%d, desired %d)", n, len(g.Members), g.Desired)
			}
			r.Advance(time.Second)
			time.Sleep(20 * time.Millisecond)
		}
	}
	once() // first sight: DeleteOnTermination off, data volumes marked as the group's
	// data maps each data volume to its device.
	data := map[string]string{}
	for id, v := range pool() {
		if v.Status != replace.PoolAttached || !slices.Contains(devs, v.Device) {
			t.Errorf("volume %s after the first pass: %s at %q, want attached at one of %v", id, v.Status, v.Device, devs)
		}
		data[id] = v.Device
	}
	if len(data) != 3*len(devs) {
		t.Fatalf("%d data volumes in the pool, want %d", len(data), 3*len(devs))
	}
	known := members(3)
	// The agent's report on a new member: its fresh volumes at the data devices are blank (the
	// agent holds them).
	reportBlank := func() {
		t.Helper()
		for id := range members(3) {
			if known[id] {
				continue
			}
			in, _ := r.Instance(id)
			var blank []string
			for _, bd := range in.BlockDevices {
				if slices.Contains(devs, bd.DeviceName) && data[bd.VolumeID] == "" {
					blank = append(blank, bd.VolumeID)
				}
			}
			if len(blank) > 0 {
				cli.run(nil, "ec2", "create-tags", "--resources", id, "--tags", "Key="+groupconfig.StateBlankVolume+",Value="+strings.Join(blank, " "))
			}
		}
	}
	// check is the acceptance: every data volume exists, attached at its own device to a running
	// member (one per member and device) or available and listed; no member with a blank fresh
	// volume while one waits. wantWaiting counts per device.
	check := func(step string, n, wantWaiting int) {
		t.Helper()
		var out struct {
			Volumes []struct {
				VolumeID    string `json:"VolumeId"`
				State       string
				Attachments []struct {
					InstanceID string `json:"InstanceId"`
					Device     string
					State      string
				}
			}
		}
		cli.run(&out, "ec2", "describe-volumes", "--filters", "Name=tag:"+groupconfig.TagGroup+",Values=web")
		listed := pool()
		cur := members(n)
		seen, holders, waiting := map[string]bool{}, map[string]string{}, 0
		for _, v := range out.Volumes {
			if data[v.VolumeID] == "" {
				continue
			}
			seen[v.VolumeID] = true
			if len(v.Attachments) == 0 {
				waiting++
				if v.State != "available" || listed[v.VolumeID].Status != replace.PoolAvailable {
					t.Errorf("%s: volume %s is %s, listed %q; want available and listed as such", step, v.VolumeID, v.State, listed[v.VolumeID].Status)
				}
				continue
			}
			a := v.Attachments[0]
			if want := data[v.VolumeID]; !cur[a.InstanceID] || a.Device != want || a.State != "attached" {
				t.Errorf("%s: volume %s is %s to %s at %s; want attached to a running member at %s", step, v.VolumeID, a.State, a.InstanceID, a.Device, want)
			}
			if prev := holders[a.InstanceID+a.Device]; prev != "" {
				t.Errorf("%s: member %s holds %s and %s at %s", step, a.InstanceID, prev, v.VolumeID, a.Device)
			}
			holders[a.InstanceID+a.Device] = v.VolumeID
			holders[a.InstanceID] = v.VolumeID
		}
		for id := range data {
			if !seen[id] {
				t.Errorf("%s: data volume %s is gone", step, id)
			}
		}
		if waiting != wantWaiting*len(devs) {
			t.Errorf("%s: %d data volume(s) wait in the pool, want %d", step, waiting, wantWaiting*len(devs))
		}
		if waiting > 0 {
			for id := range cur {
				if in, _ := r.Instance(id); holders[id] == "" && in.Tags[groupconfig.StateBlankVolume] != "" {
					t.Errorf("%s: member %s runs with a blank fresh volume while a pooled volume waits", step, id)
				}
			}
		}
	}

	// Scale-in: the removed member's data volume stays, available, in the pool.
	cli.run(nil, "autoscaling", "set-desired-capacity", "--auto-scaling-group-name", "web", "--desired-capacity", "2")
	known = members(2)
	r.Advance(time.Minute) // the removed instance shuts down; its volume is detached
	once()
	check("after scale-in", 2, 1)

	// Scale-out: the new member gets the pooled volume; its blank fresh volume is deleted.
	cli.run(nil, "autoscaling", "set-desired-capacity", "--auto-scaling-group-name", "web", "--desired-capacity", "3")
	members(3)
	reportBlank()
	settle()
	check("after scale-out", 3, 0)
	known = members(3)

	// The group replaces an instance on its own (it was terminated outside spotmax).
	var victim string
	for id := range known {
		victim = id
		break
	}
	cli.run(nil, "ec2", "terminate-instances", "--instance-ids", victim)
	r.Advance(time.Minute)
	delete(known, victim)
	members(3)
	reportBlank()
	settle()
	check("after the group's own replacement", 3, 0)
	known = members(3)

	// An interruption spotmax never heard of: no controller ran during the notice.
	for id := range known {
		victim = id
		break
	}
	if err := r.Interrupt(victim, "terminate"); err != nil {
		t.Fatal(err)
	}
	r.Advance(3 * time.Minute) // the notice runs out; the group launches a member
	delete(known, victim)
	members(3)
	reportBlank()
	settle()
	check("after an unheard interruption", 3, 0)

	// The explicit actions: a dry run changes nothing; release puts a volume back in the pool.
	var vol, holder string
	for id, v := range pool() {
		if v.Status == replace.PoolAttached {
			vol, holder = id, v.Instance
			break
		}
	}
	if x := runBin(ctx, bin, "volumes", "release", vol, "--dry-run"); x.code != 0 || !strings.Contains(x.stdout, "would detach "+vol) {
		t.Errorf("volumes release --dry-run: exit %d\n%s%s", x.code, x.stdout, x.stderr)
	}
	if x := runBin(ctx, bin, "volumes", "delete", vol, "--yes"); x.code == 0 || !strings.Contains(x.stderr, "only a volume attached to nothing") {
		t.Errorf("volumes delete of an attached volume: exit %d, want a refusal\n%s", x.code, x.stderr)
	}
	if x := runBin(ctx, bin, "volumes", "release", vol, "--yes", "--force"); x.code != 0 {
		t.Fatalf("volumes release --force: exit %d\n%s", x.code, x.stderr)
	}
	r.Advance(5 * time.Second)
	if v := pool()[vol]; v.Status != replace.PoolAvailable || v.Instance != "" {
		t.Errorf("released volume %s: %s on %q, want available", vol, v.Status, v.Instance)
	}
	if x := runBin(ctx, bin, "volumes", "adopt", vol, holder, "--dry-run", "-o", "json"); x.code != 0 || !strings.Contains(x.stdout, `"dry_run": true`) {
		t.Errorf("volumes adopt --dry-run: exit %d\n%s%s", x.code, x.stdout, x.stderr)
	}
	if x := runBin(ctx, bin, "volumes", "adopt", vol, holder, "--yes"); x.code != 0 {
		t.Errorf("volumes adopt: exit %d\n%s", x.code, x.stderr)
	}
	if x := runBin(ctx, bin, "volumes", "adopt", "vol-nope", holder); x.code != ExitUsage || !strings.Contains(x.stderr, `"vol-nope" is not an EBS volume id`) {
		t.Errorf("volumes adopt of a bad id: exit %d\n%s", x.code, x.stderr)
	}
	check("after release and adopt", 3, 0)
}
