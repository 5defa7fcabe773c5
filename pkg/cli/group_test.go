package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

func TestGroupTagThenListShowsConfiguration(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "web", 2, nil)
	e.group(t, "batch", 1, nil)

	out, errOut, code := run(t, "group", "tag", "web", "--guarantee-living-mins", "50", "--persistence-dev", "/dev/sdf",
		"--persistence-mount-path", "/data", "--alt", "m5a.large,m6i.large", "--detaching-delay", "80s", "--yes")
	if code != 0 {
		t.Fatalf("group tag: exit %d, stderr %s", code, errOut)
	}
	if !strings.Contains(out, "spotmax:gurantee_living_mins") {
		t.Errorf("group tag output does not show the written tag:\n%s", out)
	}
	g, _ := e.Region().Group("web")
	want := map[string]string{
		groupconfig.TagGroup: "web", groupconfig.TagGuaranteeLivingMins: "50", groupconfig.TagPersistenceDev: "/dev/sdf",
		groupconfig.TagPersistenceMountPath: "/data", "spotmax:alt1": "m5a.large", "spotmax:alt2": "m6i.large",
		groupconfig.TagDetachingDelaySeconds: "80",
	}
	for k, v := range want {
		if got, ok := g.Tag(k); !ok || got != v {
			t.Errorf("group tag %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	for _, tag := range g.Tags {
		if (tag.Key == groupconfig.TagGroup || tag.Key == groupconfig.TagPersistenceMountPath) != tag.PropagateAtLaunch {
			t.Errorf("tag %s PropagateAtLaunch = %v", tag.Key, tag.PropagateAtLaunch)
		}
	}
	// Current members got the propagated tags too.
	for _, m := range g.Members {
		in, _ := e.Region().Instance(m.InstanceID)
		if in.Tags[groupconfig.TagGroup] != "web" || in.Tags[groupconfig.TagPersistenceMountPath] != "/data" {
			t.Errorf("member %s tags = %v, want spotmax:group and the mount path copied", m.InstanceID, in.Tags)
		}
	}

	out, errOut, code = run(t, "group", "list", "-o", "json")
	if code != 0 {
		t.Fatalf("group list: exit %d, stderr %s", code, errOut)
	}
	var groups []groupJSON
	if err := json.Unmarshal([]byte(out), &groups); err != nil {
		t.Fatalf("group list -o json is not JSON: %v\n%s", err, out)
	}
	if len(groups) != 1 || groups[0].Name != "web" {
		t.Fatalf("group list = %+v, want only web (batch has no spotmax tags)", groups)
	}
	if got := groups[0]; !got.Valid || !got.Managed || got.Spot != 2 || got.Settings[groupconfig.TagGuaranteeLivingMins] != "50" {
		t.Errorf("group web = %+v", got)
	}
	golden(t, "group-list.json", out)
}

func TestGroupTagInvalidValueWritesNothing(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "web", 1, map[string]string{groupconfig.TagGroup: "web"})
	e.Region().ResetCalls()

	_, errOut, code := run(t, "group", "tag", "web", "--set", "spotmax:detaching_delay_seconds=abc", "--yes")
	if code != ExitInvalidConfig {
		t.Errorf("exit code = %d, want %d", code, ExitInvalidConfig)
	}
	for _, want := range []string{`"web"`, "spotmax:detaching_delay_seconds", `"abc"`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error %q does not name %s", errOut, want)
		}
	}
	for _, c := range e.Region().Calls() {
		if strings.Contains(c.Action, "CreateOrUpdateTags") || strings.Contains(c.Action, "CreateTags") || strings.Contains(c.Action, "DeleteTags") {
			t.Errorf("invalid tag value still called %s", c.Action)
		}
	}
	g, _ := e.Region().Group("web")
	if _, set := g.Tag(groupconfig.TagDetachingDelaySeconds); set {
		t.Errorf("invalid value was written")
	}
}

func TestGroupTagErrors(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "web", 1, map[string]string{groupconfig.TagGroup: "web"})
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  []string
	}{
		{"unknown key with hint", []string{"group", "tag", "web", "--set", "spotmax:detach_delay_seconds=30", "--yes"}, ExitInvalidConfig,
			[]string{"spotmax:detach_delay_seconds", "did you mean spotmax:detaching_delay_seconds"}},
		{"negative time", []string{"group", "tag", "web", "--detaching-delay", "-5s", "--yes"}, ExitInvalidConfig,
			[]string{"spotmax:detaching_delay_seconds", `"-5s"`}},
		{"cross-field", []string{"group", "tag", "web", "--persistence-mount-path", "/data", "--yes"}, ExitInvalidConfig,
			[]string{"spotmax:persistence_mount_path"}},
		{"group not found", []string{"group", "tag", "nope", "--guarantee-living-mins", "50", "--yes"}, ExitNotFound,
			[]string{"nope"}},
		{"bad --set", []string{"group", "tag", "web", "--set", "novalue"}, ExitUsage, []string{"key=value"}},
		{"not a terminal without --yes", []string{"group", "tag", "web", "--buffer-mins", "2"}, ExitUsage, []string{"--yes"}},
		{"bad output", []string{"group", "list", "-o", "xml"}, ExitUsage, []string{"xml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := run(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not contain %q", errOut, w)
				}
			}
			if strings.Count(strings.TrimSpace(errOut), "\n") > 2 {
				t.Errorf("error is not short:\n%s", errOut)
			}
		})
	}
}

func TestGroupTagDryRunWritesNothing(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "web", 1, map[string]string{groupconfig.TagGroup: "web"})
	out, errOut, code := run(t, "group", "tag", "web", "--guarantee-living-mins", "50", "--dry-run", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res tagResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || len(res.Changes) != 1 || res.Changes[0].Key != groupconfig.TagGuaranteeLivingMins || res.Changes[0].Op != groupconfig.ChangeAdd {
		t.Errorf("dry run result = %+v", res)
	}
	g, _ := e.Region().Group("web")
	if _, ok := g.Tag(groupconfig.TagGuaranteeLivingMins); ok {
		t.Error("dry run wrote the tag")
	}
}

func TestGroupUntag(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "web", 1, map[string]string{groupconfig.TagGroup: "web", groupconfig.TagGuaranteeLivingMins: "50"})
	if _, errOut, code := run(t, "group", "untag", "web", "gurantee_living_mins", "--yes"); code != 0 {
		t.Fatalf("untag: exit %d: %s", code, errOut)
	}
	g, _ := e.Region().Group("web")
	if _, ok := g.Tag(groupconfig.TagGuaranteeLivingMins); ok {
		t.Error("tag still there after untag")
	}
	if _, ok := g.Tag(groupconfig.TagGroup); !ok {
		t.Error("untag of one key removed spotmax:group")
	}
	if _, errOut, code := run(t, "group", "untag", "web", "--all", "--yes"); code != 0 {
		t.Fatalf("untag --all: exit %d: %s", code, errOut)
	}
	g, _ = e.Region().Group("web")
	for _, tag := range g.Tags {
		if strings.HasPrefix(tag.Key, groupconfig.Prefix) {
			t.Errorf("tag %s left after untag --all", tag.Key)
		}
	}
	in, _ := e.Region().Instance(g.Members[0].InstanceID)
	if _, ok := in.Tags[groupconfig.TagGroup]; ok {
		t.Error("spotmax:group left on the member after untag --all")
	}
}

func TestGroupListFlagsInvalidGroupsAndCapacityRebalance(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "good", 1, map[string]string{groupconfig.TagGroup: "good"})
	e.group(t, "bad", 1, map[string]string{groupconfig.TagGroup: "bad", groupconfig.TagDetachingDelaySeconds: "abc"})
	_, err := e.asg.UpdateAutoScalingGroup(context.Background(), &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("good"), CapacityRebalance: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "group", "list")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"bad", "INVALID", "spotmax:detaching_delay_seconds", "good", "capacity rebalancing ON"} {
		if !strings.Contains(out, want) {
			t.Errorf("table does not contain %q:\n%s", want, out)
		}
	}
	_, errOut, code = run(t, "group", "tag", "good", "--buffer-mins", "2", "--yes")
	if code != 0 || !strings.Contains(errOut, "Capacity Rebalancing") {
		t.Errorf("tagging a group with capacity rebalancing: exit %d, stderr %q; want a warning", code, errOut)
	}
}

func TestGroupStatus(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "web", 2, map[string]string{groupconfig.TagGroup: "web", groupconfig.TagPersistenceDev: "/dev/sdf",
		groupconfig.TagGuaranteeLivingMins: "50"})
	out, errOut, code := run(t, "group", "status", "web", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Instances) != 2 {
		t.Fatalf("instances = %d, want 2", len(st.Instances))
	}
	for _, in := range st.Instances {
		if in.Market != "spot" || in.Type != "m5.large" || !strings.HasPrefix(in.DataVolume, "vol-") || in.State != "running" {
			t.Errorf("instance = %+v", in)
		}
		if in.LifetimeLeftSeconds == nil || *in.LifetimeLeftSeconds > 49*60 || *in.LifetimeLeftSeconds < 40*60 {
			t.Errorf("lifetime left = %v, want about 49 minutes", ptrString(in.LifetimeLeftSeconds))
		}
		if !in.DataVolumeDeleteOnTermination {
			t.Errorf("data volume DeleteOnTermination = false, the launch template set true")
		}
	}
	golden(t, "group-status.json", out)

	out, _, _ = run(t, "group", "status", "web")
	for _, want := range []string{"INSTANCE", "spot", "DELETE ON TERMINATION", "us-east-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("table does not contain %q:\n%s", want, out)
		}
	}
	if _, _, code := run(t, "group", "status", "missing"); code != ExitNotFound {
		t.Errorf("status of a missing group: exit %d, want %d", code, ExitNotFound)
	}
}

func TestNoRegionAndNoCredentials(t *testing.T) {
	e := newTestEnv(t)
	_ = e
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	_, errOut, code := run(t, "group", "list")
	if code != ExitAWSConfig || !strings.Contains(errOut, "no AWS region") {
		t.Errorf("no region: exit %d, stderr %q", code, errOut)
	}
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	_, errOut, code = run(t, "group", "list")
	if code != ExitAWSConfig || !strings.Contains(errOut, "no AWS credentials") || strings.Count(errOut, "\n") > 1 {
		t.Errorf("no credentials: exit %d, stderr %q", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, "version", "-o", "json")
	var v map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["version"] == "" {
		t.Errorf("version: exit %d, output %q", code, out)
	}
}

func ptrString(p *int64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}
