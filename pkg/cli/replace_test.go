package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

func TestReplaceFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
		check   func(*ReplaceOptions) bool
	}{
		{[]string{"i-1", "i-2"}, "", func(o *ReplaceOptions) bool { return len(o.Instances) == 2 }},
		{[]string{"--group", "web", "--on-demand"}, "", func(o *ReplaceOptions) bool { return o.OnDemand && o.Group == "web" }},
		{[]string{"--group", "web", "--older-than", "50m", "--max-parallel", "3"}, "", func(o *ReplaceOptions) bool {
			return o.OlderThan == 50*time.Minute && o.MaxParallel == 3
		}},
		{[]string{"--resume"}, "", func(o *ReplaceOptions) bool { return o.Resume }},
		{[]string{}, "name instances to replace", nil},
		{[]string{"--group", "web"}, "needs a selection", nil},
		{[]string{"i-1", "--group", "web", "--all"}, "not both", nil},
		{[]string{"i-1", "--all"}, "select from --group", nil},
		{[]string{"web"}, "not an instance id", nil},
		{[]string{"--resume", "i-1"}, "--resume takes no instances", nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			ios, _, _, _ := Test()
			f := NewFactory(ios)
			var got *ReplaceOptions
			cmd := newReplaceCmd(f, func(_ context.Context, o *ReplaceOptions) error { got = o; return nil })
			cmd.SetArgs(tt.args)
			cmd.SetOut(ios.Out)
			cmd.SetErr(ios.ErrOut)
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != ExitUsage {
					t.Fatalf("err = %v (exit %d), want usage error %q", err, exitCode(err), tt.wantErr)
				}
				return
			}
			if err != nil || got == nil || !tt.check(got) {
				t.Fatalf("err = %v, opts = %+v", err, got)
			}
		})
	}
	_ = cobra.Command{}
}

// replaceEnv is a simulated region with a spotmax group keeping a data volume, and replace
// options whose workflow polls fast.
func replaceEnv(t *testing.T) (*testEnv, *ReplaceOptions, []string) {
	t.Helper()
	e := newTestEnv(t)
	ids := e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 2, Max: 2,
		Tags: map[string]string{groupconfig.TagGroup: "web", groupconfig.TagPersistenceDev: "/dev/sdf",
			groupconfig.TagPersistenceMountPath: "/data", groupconfig.TagDetachingDelaySeconds: "0",
			groupconfig.TagPreactionDetachDelaySeconds: "0", groupconfig.TagMaxNumOfTerminatedOneTime: "2"}})
	ios, _, _, _ := Test()
	to := replace.DefaultTimeouts()
	to.Release = 0
	opts := &ReplaceOptions{IO: ios, Output: OutputJSON, Yes: true, Now: time.Now,
		Lister:   &inventory.Lister{ASG: e.asg, EC2: e.ec2},
		Workflow: &replace.Workflow{EC2: e.ec2, ASG: e.asg, PollMin: 5 * time.Millisecond, PollMax: 50 * time.Millisecond, Timeouts: &to},
	}
	return e, opts, ids
}

func TestReplaceCommandGroupAll(t *testing.T) {
	e, opts, ids := replaceEnv(t)
	opts.Group, opts.All = "web", true
	if err := replaceRun(context.Background(), opts); err != nil {
		t.Fatalf("replace: %v\n%s", err, opts.IO.ErrOut)
	}
	var outcomes []replaceOutcome
	if err := json.Unmarshal([]byte(opts.IO.Out.(interface{ String() string }).String()), &outcomes); err != nil {
		t.Fatal(err)
	}
	if len(outcomes) != 2 {
		t.Fatalf("outcomes = %+v", outcomes)
	}
	for _, oc := range outcomes {
		if oc.Error != "" || oc.Result == nil || oc.Result.New == "" || len(oc.Result.Volumes) == 0 || oc.Result.Market != "spot" {
			t.Errorf("outcome = %+v", oc)
		}
	}
	g, _ := e.Region().Group("web")
	for _, id := range ids {
		if _, still := g.Member(id); still {
			t.Errorf("%s still in the group", id)
		}
	}
	if g.Max != 2 || g.Desired != 2 {
		t.Errorf("group max/desired = %d/%d, want 2/2", g.Max, g.Desired)
	}
	// Piped stderr gets one line per step.
	if errOut := opts.IO.ErrOut.(interface{ String() string }).String(); !strings.Contains(errOut, "move-volume") {
		t.Errorf("progress lines missing:\n%s", errOut)
	}
}

func TestReplaceCommandDryRunAndRefusal(t *testing.T) {
	e, opts, ids := replaceEnv(t)
	opts.Instances, opts.DryRun = ids[:1], true
	before := e.Region().CallsTotal()
	if err := replaceRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	for _, c := range e.Region().Calls() {
		for _, mut := range []string{"RunInstances", "CreateTags", "AttachInstances", "ModifyInstanceAttribute", "DetachInstances"} {
			if strings.HasSuffix(c.Action, ":"+mut) {
				t.Errorf("dry run called %s", c.Action)
			}
		}
	}
	_ = before
	golden(t, "replace-dry-run.json", opts.IO.Out.(interface{ String() string }).String())

	// An instance outside any group is refused with its id.
	out, _, code := run(t, "replace", "i-00000000000000000", "--yes")
	_ = out
	if code != ExitNotFound {
		t.Errorf("unknown instance: exit %d, want %d", code, ExitNotFound)
	}
}
