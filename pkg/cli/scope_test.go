package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

func calls(e *testEnv, action string) int {
	for _, c := range e.Region().Calls() {
		if c.Action == action {
			return c.Count
		}
	}
	return 0
}

// TestUnmanagedGroupStatusAndTag is issue 11 case 5 for `group status` and `group tag`: a group
// without spotmax:group shows no configuration but says it is not managed, and tagging it is how
// it becomes managed.
func TestUnmanagedGroupStatusAndTag(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "batch", 1, nil)

	out, errOut, code := run(t, "group", "status", "batch")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"NOT MANAGED", `group "batch" is not managed by spotmax`, groupconfig.TagGroup, "spotmax group tag batch"} {
		if !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "config:") || strings.Contains(out, "od-fallback") {
		t.Errorf("status of an unmanaged group shows a configuration:\n%s", out)
	}
	out, _, _ = run(t, "group", "status", "batch", "-o", "json")
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.Group.Managed || st.Group.Summary != "" || len(st.Group.Settings) != 0 || !strings.Contains(st.Group.NotManaged, "no spotmax:group tag") {
		t.Errorf("status -o json of an unmanaged group: %+v", st.Group)
	}
	for _, in := range st.Instances {
		if in.DataVolume != "" || in.LifetimeLeftSeconds != nil {
			t.Errorf("instance %+v shows settings of a configuration the group does not have", in)
		}
	}

	if _, errOut, code := run(t, "group", "tag", "batch", "--guarantee-living-mins", "50", "--yes"); code != 0 {
		t.Fatalf("group tag of an unmanaged group: exit %d: %s", code, errOut)
	}
	out, _, _ = run(t, "group", "status", "batch", "-o", "json")
	st = statusJSON{}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Group.Managed || st.Group.NotManaged != "" || st.Group.Settings[groupconfig.TagGroup] != "batch" {
		t.Errorf("after group tag: %+v", st.Group)
	}

	// Ignored: still shown with its configuration, and said not managed.
	if _, errOut, code := run(t, "group", "tag", "batch", "--ignore", "--yes"); code != 0 {
		t.Fatalf("group tag --ignore: exit %d: %s", code, errOut)
	}
	out, _, _ = run(t, "group", "status", "batch")
	if !strings.Contains(out, "NOT MANAGED") || !strings.Contains(out, groupconfig.TagIgnore+"=true") {
		t.Errorf("status of an ignored group:\n%s", out)
	}
}

// TestDrainRefusesUnmanagedGroup: draining an instance whose group spotmax does not manage would
// use defaults nobody chose; it is refused with ExitNotManaged, naming the group.
func TestDrainRefusesUnmanagedGroup(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "batch", 1, nil)
	g, _ := e.Region().Group("batch")
	id := g.Members[0].InstanceID
	_, errOut, code := run(t, "drain", id, "--yes")
	if code != ExitNotManaged {
		t.Errorf("exit %d, want %d: %s", code, ExitNotManaged, errOut)
	}
	for _, want := range []string{"cannot drain " + id, `group "batch" is not managed by spotmax`, "--kubeconfig and --grace-period"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}
	_, errOut, code = run(t, "drain", "ip-node", "--group", "batch", "--yes")
	if code != ExitNotManaged || !strings.Contains(errOut, `"batch"`) {
		t.Errorf("drain --group batch: exit %d: %s", code, errOut)
	}
}

// TestGroupTagRefusesRootDevice is issue 11 case 4 at tag time: the root device is refused as
// persistence_dev, naming the group, the tag, the value and the root device; nothing is written.
func TestGroupTagRefusesRootDevice(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "web", 1, map[string]string{groupconfig.TagGroup: "web"})
	for _, dev := range []string{"/dev/xvda", "/dev/sda1"} {
		_, errOut, code := run(t, "group", "tag", "web", "--persistence-dev", dev, "--yes")
		if code != ExitInvalidConfig {
			t.Errorf("%s: exit %d, want %d: %s", dev, code, ExitInvalidConfig, errOut)
		}
		for _, want := range []string{`"web"`, groupconfig.TagPersistenceDev, `"` + dev + `"`, "root device"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr %q lacks %q", errOut, want)
			}
		}
	}
	g, _ := e.Region().Group("web")
	if v, ok := g.Tag(groupconfig.TagPersistenceDev); ok {
		t.Errorf("persistence_dev written: %q", v)
	}
	// A real data device passes, checked against the members and the launch template.
	e.Region().ResetCalls()
	if _, errOut, code := run(t, "group", "tag", "web", "--persistence-dev", "/dev/sdf", "--yes"); code != 0 {
		t.Fatalf("/dev/sdf: exit %d: %s", code, errOut)
	}
	if calls(e, "ec2:DescribeLaunchTemplateVersions") != 1 || calls(e, "ec2:DescribeInstances") != 1 {
		t.Errorf("calls %v, want the template and the members read once", e.Region().Calls())
	}
}

// TestGroupTagChecksInstanceTypeOfferings is issue 10's "instance types are validated": an
// alternative type EC2 does not offer is refused at tag time, naming the tag and the value, with
// a "did you mean"; nothing is written.
func TestGroupTagChecksInstanceTypeOfferings(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "web", 1, map[string]string{groupconfig.TagGroup: "web"})
	e.Region().ResetCalls()
	_, errOut, code := run(t, "group", "tag", "web", "--alt", "c5.large,m5.lage", "--yes")
	if code != ExitInvalidConfig {
		t.Errorf("exit %d, want %d: %s", code, ExitInvalidConfig, errOut)
	}
	for _, want := range []string{`"web"`, `spotmax:alt2="m5.lage"`, "not an instance type EC2 offers", `did you mean "m5.large"?`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}
	if strings.Contains(errOut, "alt1") {
		t.Errorf("the offered c5.large is reported: %s", errOut)
	}
	if n := calls(e, "autoscaling:CreateOrUpdateTags"); n != 0 {
		t.Errorf("%d CreateOrUpdateTags calls after a refusal", n)
	}
	e.Region().ResetCalls()
	if _, errOut, code := run(t, "group", "tag", "web", "--alt", "c5.large,m5a.large", "--yes"); code != 0 {
		t.Fatalf("offered types: exit %d: %s", code, errOut)
	}
	if n := calls(e, "ec2:DescribeInstanceTypeOfferings"); n != 1 {
		t.Errorf("%d DescribeInstanceTypeOfferings calls for two types, want 1", n)
	}
	g, _ := e.Region().Group("web")
	if v, _ := g.Tag("spotmax:alt2"); v != "m5a.large" {
		t.Errorf("spotmax:alt2 = %q", v)
	}
}

// TestReplaceRefusesUnmanagedGroup is issue 11 case 5 as a user meets it: `spotmax replace` of
// an instance of a group without spotmax:group, or of that group with --all, changes nothing and
// names the group and the missing tag.
func TestReplaceRefusesUnmanagedGroup(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "batch", 1, nil)
	g, _ := e.Region().Group("batch")
	id := g.Members[0].InstanceID
	e.Region().ResetCalls()
	for _, args := range [][]string{{"replace", id, "--yes"}, {"replace", "--group", "batch", "--all", "--yes"}} {
		_, errOut, code := run(t, args...)
		if code == ExitOK {
			t.Errorf("%v: exit 0", args)
		}
		for _, want := range []string{"batch", groupconfig.TagGroup} {
			if !strings.Contains(errOut, want) {
				t.Errorf("%v: stderr %q lacks %q", args, errOut, want)
			}
		}
	}
	for _, action := range []string{"ec2:RunInstances", "ec2:TerminateInstances", "ec2:CreateTags", "autoscaling:DetachInstances"} {
		if n := calls(e, action); n != 0 {
			t.Errorf("%d %s calls on an unmanaged group", n, action)
		}
	}
}
