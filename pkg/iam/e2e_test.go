package iam_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/pricing"

	"github.com/spotmax/spotmax/pkg/agent"
	"github.com/spotmax/spotmax/pkg/cli"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/iam"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/replace/steps/k8sdrain"
	"github.com/spotmax/spotmax/pkg/savings"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// Access keys of the roles: the simulated region records the actions each key calls.
const (
	controllerKey = "controller-key"
	agentKey      = "agent-key"
)

// uncalled lists the actions a policy allows that no test calls yet, each with the reason. The
// test fails when an action listed here is called after all, so the list only shrinks.
var uncalled = map[iam.Role]map[string]string{
	iam.Controller: {
		"sqs:ReceiveMessage":                "the EventBridge-on-SQS consumer of `spotmax run` has not landed",
		"sqs:DeleteMessage":                 "the EventBridge-on-SQS consumer of `spotmax run` has not landed",
		"iam:PassRole":                      "not an API call: IAM checks it inside RunInstances when the launch template names an instance profile",
		"autoscaling:SetDesiredCapacity":    "used by the scaling-failure stand-in (replace.Workflow.Fill), covered end to end in pkg/controller",
		"autoscaling:SetInstanceProtection": "used when an interrupted instance is lost during a spot outage and the group cannot launch in its place (TestBugInterruptionDuringSpotOutageInEveryAZ in pkg/replace)",
		"autoscaling:TerminateInstanceInAutoScalingGroup": "only when the old instance left its group before it could be detached " +
			"(pkg/replace's lost-instance tests); not in this flow",
		"autoscaling:DescribeWarmPool":          "only for a group tagged is_warm_pool_first (pkg/replace's warm-pool tests, TestWarm*)",
		"autoscaling:DescribeScalingActivities": "only on the warm pool's route (TestWarm*) and when an old instance left its group before it could be detached (pkg/replace's lost-instance tests)",
	},
	iam.Agent: {},
}

// iamAction turns the simulated region's service:Action (SigV4 signing names, API operation
// names) into the IAM action that authorizes it.
func iamAction(call string) string {
	svc, action, _ := strings.Cut(call, ":")
	if svc == "monitoring" {
		svc = "cloudwatch"
	}
	if svc == "sqs" {
		// SQS authorizes its batch operations as their single counterparts.
		action = strings.TrimSuffix(action, "Batch")
	}
	return svc + ":" + action
}

// as returns an SDK configuration signing with the access key id key.
func as(env *simtest.Env, key string) aws.Config {
	cfg := env.Config.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(key, "secret", "")
	return cfg
}

// runCLI runs the spotmax command line with the controller's credentials from the environment.
func runCLI(t *testing.T, args ...string) string {
	t.Helper()
	ios, _, out, errOut := cli.Test()
	if code := cli.Run(context.Background(), cli.NewFactory(ios), args); code != 0 {
		t.Fatalf("spotmax %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out.String()
}

func TestPoliciesAllowExactlyWhatTheRolesCall(t *testing.T) {
	env := simtest.Start(t, sim.Options{TimeScale: 1000, IMDS: true})
	ctx := context.Background()
	r := env.Region()

	// A full group (MaxSize = desired) of spot instances with a data volume, not yet spotmax's.
	members := env.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 2, Max: 2})

	// Controller, through the CLI: onboard the group, change a propagated tag, list, inspect.
	t.Setenv("AWS_ENDPOINT_URL", env.URL())
	t.Setenv("AWS_REGION", r.Name())
	t.Setenv("AWS_ACCESS_KEY_ID", controllerKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_PROFILE", "")
	runCLI(t, "group", "tag", "web", "--persistence-dev", "/dev/sdf", "--persistence-mount-path", "/data", "--yes")
	runCLI(t, "group", "untag", "web", "persistence_mount_path", "--yes")
	runCLI(t, "group", "tag", "web", "--persistence-mount-path", "/data", "--yes")
	if out := runCLI(t, "group", "list"); !strings.Contains(out, "web") {
		t.Fatalf("group list does not show web:\n%s", out)
	}
	runCLI(t, "group", "status", "web")

	// Controller: a replacement that moves the data volume and needs MaxSize raised.
	ctl := as(env, controllerKey)
	ec2c, asg := ec2.NewFromConfig(ctl), autoscaling.NewFromConfig(ctl)
	g, err := (&inventory.Lister{ASG: asg, EC2: ec2c}).Group(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	// Agent, on the old instance: once it is marked retiring, report the data volume released
	// (on its own instance, with its own key), so that the workflow detaches the volume.
	agent := as(env, agentKey)
	aec2 := ec2.NewFromConfig(agent)
	// The agent announces itself first: a replacement waits for a release only where one runs.
	if _, err := aec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{members[0]}, Tags: []ec2types.Tag{{Key: aws.String(groupconfig.StateAgent),
		Value: aws.String("running e2e " + r.Clock().Now().UTC().Format(time.RFC3339))}}}); err != nil {
		t.Fatal(err)
	}
	released := make(chan error, 1)
	go func() { released <- playAgentRelease(ctx, r, aec2, members[0]) }()
	to := replace.DefaultTimeouts()
	to.Release = time.Hour // only the agent's release may free the volume
	// The workflow publishes its events through the controller's CloudWatch publisher.
	pub := metrics.NewPublisher(cloudwatch.NewFromConfig(ctl), metrics.PublisherOptions{Now: r.Clock().Now})
	// ... and its action record through the controller's action log (CloudWatch Logs).
	al := metrics.NewActionLog(cloudwatchlogs.NewFromConfig(ctl), metrics.ActionLogOptions{Actor: "iam test"})
	w := &replace.Workflow{EC2: ec2c, ASG: asg, Clock: r.Clock(), Metrics: metrics.Multi{pub, al},
		PollMin: 5 * time.Millisecond, PollMax: 50 * time.Millisecond, Timeouts: &to}
	res, err := w.Replace(ctx, g, replace.Request{InstanceID: members[0], Reason: replace.ReasonManual})
	if rerr := <-released; rerr != nil {
		t.Fatalf("agent release on %s: %v", members[0], rerr)
	}
	if err != nil {
		t.Fatalf("replacing %s: %v", members[0], err)
	}
	if len(res.Volumes) == 0 {
		t.Fatalf("the replacement moved no data volume: %+v", res)
	}
	// Controller: an interruption warning read from the queue is confirmed with EC2 (the spot
	// request's status) before it is acted on.
	if ok, why, err := w.ConfirmInterruption(ctx, res.New); err != nil || ok {
		t.Errorf("confirming a warning for the healthy %s: confirmed=%v (%s), %v; want not confirmed", res.New, ok, why, err)
	}
	// The conditions assume the instances acted on carry spotmax:group: the old one after it
	// left the group, the new one from its launch.
	for _, id := range []string{res.Old, res.New} {
		in, _ := r.Instance(id)
		if in.Tags[groupconfig.TagGroup] != "web" {
			t.Errorf("instance %s (%s) lacks %s=web, which ActOnManagedInstances requires", id, in.State, groupconfig.TagGroup)
		}
	}

	// Controller: publish what happened (the workflow's events and a reconcile's gauges) and
	// read it back with spotmax history.
	pub.Gauge(ctx, "web", metrics.Counts{Spot: 2})
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := al.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The simulated clock runs ahead of the wall clock that --start is checked against.
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Hour)
	end := r.Clock().Now().Add(time.Hour).UTC().Truncate(time.Hour)
	out := runCLI(t, "history", "--group", "web", "--start", start.Format(time.RFC3339), "--end", end.Format(time.RFC3339), "--period", "1h")
	if !strings.Contains(out, "ReplacementSucceeded: 1 event") || !strings.Contains(out, "VolumeMoved: 1 event") {
		t.Errorf("spotmax history does not show the replacement:\n%s", out)
	}
	if !strings.Contains(out, res.Old) || !strings.Contains(out, res.New) {
		t.Errorf("spotmax history does not list the replacement's action record (%s → %s):\n%s", res.Old, res.New, out)
	}
	// Controller: `spotmax savings` prices hours with the spot price history and the Price List.
	// (The simulated clock runs ahead of the wall clock the command's period ends at, so its
	// price sources are called directly here.)
	prices := &savings.AWSPrices{EC2: ec2c, Pricing: pricing.NewFromConfig(ctl), Region: r.Name()}
	if od, err := prices.OnDemand(ctx, res.Type); err != nil || od <= 0 {
		t.Errorf("on-demand price of %s: %v, %v", res.Type, od, err)
	}
	if pts, err := prices.Spot(ctx, res.Type, res.AZ, r.Clock().Now().Add(-time.Hour), r.Clock().Now()); err != nil || len(pts) == 0 {
		t.Errorf("spot price history of %s in %s: %v, %v", res.Type, res.AZ, pts, err)
	}
	runCLI(t, "dashboard", "--group", "web", "--yes")
	if _, ok := r.Dashboard(metrics.DashboardName("web")); !ok {
		t.Errorf("spotmax dashboard wrote no dashboard %s", metrics.DashboardName("web"))
	}

	// Agent, on the replacement: the membership check's fallback through the EC2 API, the data
	// volume's id lookup (Xen instances), a progress report on its own instance, and a metric.
	// These are the calls of pkg/agent's OwnInstanceEC2 (which TestPoliciesCoverTheDeclaredInterfaces
	// ties to the policy); running the agent itself here would need root for its mounts.
	tags, err := aec2.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []ec2types.Filter{
		{Name: aws.String("resource-id"), Values: []string{res.New}}, {Name: aws.String("key"), Values: []string{groupconfig.TagGroup}}}})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Value) != "web" {
		t.Fatalf("agent membership check on %s: %v, %+v", res.New, err, tags)
	}
	if _, err := aec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{res.New}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := aec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{res.New},
		Tags: []ec2types.Tag{{Key: aws.String(groupconfig.StateVolumeMounted), Value: aws.String(res.Volumes[0])}}}); err != nil {
		t.Fatal(err)
	}
	apub := metrics.NewPublisher(cloudwatch.NewFromConfig(agent), metrics.PublisherOptions{Now: r.Clock().Now})
	apub.Record(ctx, metrics.Event{Name: metrics.VolumeMounted, Group: "web", Instance: res.New, Duration: time.Second})
	if err := apub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The agent itself, on the replacement, relays a rebalance recommendation with its key (no
	// mount involved: it needs no root).
	relayNotice(t, r, agent, res.New)

	// The pool: the replacement is lost without spotmax hearing of it (terminated outside
	// spotmax), the group launches a member with a fresh volume, whose agent announces itself
	// and reports the fresh volume blank; the controller adopts the pooled data volume there and
	// deletes the blank one.
	fresh := poolAdoption(t, r, env, w, aec2, res.New)

	// Controller: a cross-AZ move (spotmax:cross_az_move): the fresh member's AZ has no capacity
	// left, so its replacement goes to another AZ and the data follows through a snapshot.
	crossAZMove(t, r, w, ec2c, asg, aec2, fresh)

	checkTagTrustBoundary(t, r, map[string][]string{agentKey: {members[0], res.New, fresh}}, controllerKey)

	calls := r.CallsBy()
	for role, key := range map[iam.Role]string{iam.Controller: controllerKey, iam.Agent: agentKey} {
		p, err := iam.For(role, iam.Options{})
		if err != nil {
			t.Fatal(err)
		}
		called := map[string]bool{}
		for _, c := range calls[key] {
			called[iamAction(c)] = true
		}
		if len(called) == 0 {
			t.Fatalf("the %s key called nothing: the test proves nothing", role)
		}
		for a := range called {
			if !p.Allows(a) {
				t.Errorf("the %s role called %s, which its policy does not allow", role, a)
			}
		}
		for _, a := range p.Actions() {
			why, excused := uncalled[role][a]
			switch {
			case !called[a] && !excused:
				t.Errorf("the %s policy allows %s, which no test calls: remove it, or cover the code that needs it", role, a)
			case called[a] && excused:
				t.Errorf("the %s role now calls %s: remove it from the uncalled list (%s)", role, a, why)
			}
		}
		t.Logf("%s: %d actions called: %s", role, len(called), fmt.Sprint(calls[key]))
	}
}

// crossAZMove opts group web into cross-AZ moves (through the CLI, with the controller's key),
// takes every capacity of id's type away in its AZ and replaces id with w: the replacement runs
// in another AZ with a verified copy of the data volume, the source is kept.
func crossAZMove(t *testing.T, r *sim.Region, w *replace.Workflow, ec2c *ec2.Client, asg *autoscaling.Client, aec2 *ec2.Client, id string) {
	t.Helper()
	ctx := context.Background()
	runCLI(t, "group", "tag", "web", "--cross-az-move=true", "--yes")
	in, _ := r.Instance(id)
	for _, m := range []string{sim.MarketSpot, sim.MarketOnDemand} {
		r.SetCapacity(sim.PoolKey{InstanceType: in.Type, AZ: in.AZ, Market: m}, 0)
	}
	g, err := (&inventory.Lister{ASG: asg, EC2: ec2c}).Group(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan error, 1)
	go func() { released <- playAgentRelease(ctx, r, aec2, id) }()
	res, err := w.Replace(ctx, g, replace.Request{InstanceID: id, Reason: replace.ReasonManual})
	if rerr := <-released; rerr != nil {
		t.Fatalf("agent release on %s: %v", id, rerr)
	}
	if err != nil {
		t.Fatalf("cross-AZ replacement of %s: %v", id, err)
	}
	if len(res.CrossAZ) != 1 || res.AZ == in.AZ {
		t.Fatalf("replacement of %s in %s: %+v; want a cross-AZ move out of %s", id, res.AZ, res.CrossAZ, in.AZ)
	}
	m := res.CrossAZ[0]
	if v, _ := r.Volume(m.Source); v.Tags[groupconfig.StateSupersededBy] != m.Volume {
		t.Errorf("source %s tags %v; want superseded by %s", m.Source, v.Tags, m.Volume)
	}
}

// relayNotice runs spotmax-agent on instance id with the agent's credentials until it relays a
// rebalance recommendation on its instance.
func relayNotice(t *testing.T, r *sim.Region, cfg aws.Config, id string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, agent.Config{AWS: &cfg, IMDSEndpoint: r.IMDSURL(id), ConsulMode: "off", DevDir: "-",
			SysBlockDir: "-", ByIDDir: t.TempDir(), StateDir: t.TempDir(), EventInterval: 20 * time.Millisecond,
			TagInterval: 50 * time.Millisecond})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent on %s: %v", id, err)
		}
	}()
	if err := r.Rebalance(id); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if in, _ := r.Instance(id); strings.HasPrefix(in.Tags[groupconfig.StateNotice], "rebalance@") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the agent on %s did not relay the rebalance recommendation", id)
}

// playAgentRelease plays spotmax-agent on a retiring instance: once the workflow marks it
// retiring, the agent "unmounts" the data volume and reports it released on its own instance.
func playAgentRelease(ctx context.Context, r *sim.Region, api *ec2.Client, id string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		in, _ := r.Instance(id)
		if in.Tags[groupconfig.StateRetiring] != "" {
			for _, bd := range in.BlockDevices {
				if bd.DeviceName == "/dev/sdf" {
					_, err := api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id},
						Tags: []ec2types.Tag{{Key: aws.String(groupconfig.StateVolumeReleased), Value: aws.String(bd.VolumeID)}}})
					return err
				}
			}
			return fmt.Errorf("instance %s has no data volume at /dev/sdf", id)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("instance %s was never marked retiring", id)
}

// TestPoliciesCoverTheDeclaredInterfaces ties each role's policy to the AWS interfaces its code
// declares (with the SDK's method names, which are the IAM action names): a method added to
// one of them without its action in the policy fails here, even before a flow calls it.
func TestPoliciesCoverTheDeclaredInterfaces(t *testing.T) {
	declared := map[iam.Role][]struct {
		service string
		iface   reflect.Type
	}{
		iam.Controller: {
			{"ec2", reflect.TypeFor[replace.EC2API]()},
			{"autoscaling", reflect.TypeFor[replace.ASGAPI]()},
			{"ec2", reflect.TypeFor[replace.SnapshotAPI]()},
			{"cloudwatch", reflect.TypeFor[metrics.CloudWatchAPI]()},
			{"cloudwatch", reflect.TypeFor[metrics.HistoryAPI]()},
			{"cloudwatch", reflect.TypeFor[metrics.DashboardAPI]()},
			{"logs", reflect.TypeFor[metrics.ActionLogAPI]()},
			{"logs", reflect.TypeFor[metrics.ActionQueryAPI]()},
			{"ec2", reflect.TypeFor[savings.EC2SpotAPI]()},
			{"pricing", reflect.TypeFor[savings.PricingAPI]()},
			{"ec2", reflect.TypeFor[k8sdrain.InstanceDescriber]()},
		},
		iam.Agent: {
			{"ec2", reflect.TypeFor[agent.OwnInstanceEC2]()},
			{"cloudwatch", reflect.TypeFor[metrics.CloudWatchAPI]()},
		},
	}
	for role, ifaces := range declared {
		p, err := iam.For(role, iam.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ifaces {
			for i := 0; i < d.iface.NumMethod(); i++ {
				if a := d.service + ":" + d.iface.Method(i).Name; !p.Allows(a) {
					t.Errorf("%s declares %s, but the %s policy does not allow %s", d.iface, d.iface.Method(i).Name, role, a)
				}
			}
		}
	}
}

// poolAdoption terminates lost (a member whose data volume is kept) with the test's own key,
// waits for the member the group launches instead, writes the agent's reports on it with the
// agent's key, and runs the controller's pool pass and adoption with w. It returns the new member.
func poolAdoption(t *testing.T, r *sim.Region, env *simtest.Env, w *replace.Workflow, aec2 *ec2.Client, lost string) string {
	t.Helper()
	ctx := context.Background()
	in, _ := r.Instance(lost)
	var data string
	for _, bd := range in.BlockDevices {
		if bd.DeviceName == "/dev/sdf" {
			data = bd.VolumeID
		}
	}
	if _, err := ec2.NewFromConfig(env.Config).TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{lost}}); err != nil {
		t.Fatal(err)
	}
	var fresh, freshVol string
	deadline := time.Now().Add(30 * time.Second)
	for fresh == "" && time.Now().Before(deadline) {
		r.Advance(10 * time.Second)
		g, _ := r.Group("web")
		for _, m := range g.Members {
			if m.LifecycleState != "InService" || m.InstanceID == lost {
				continue
			}
			mi, _ := r.Instance(m.InstanceID)
			for _, bd := range mi.BlockDevices {
				if bd.DeviceName == "/dev/sdf" && mi.LaunchTime.After(in.LaunchTime) && bd.VolumeID != data && mi.Tags[groupconfig.StateReplaces] == "" {
					fresh, freshVol = m.InstanceID, bd.VolumeID
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	if fresh == "" {
		t.Fatalf("the group launched no member in place of %s", lost)
	}
	if _, err := aec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{fresh}, Tags: []ec2types.Tag{
		{Key: aws.String(groupconfig.StateAgent), Value: aws.String("test " + r.Clock().Now().UTC().Format(time.RFC3339))},
		{Key: aws.String(groupconfig.StateBlankVolume), Value: aws.String(freshVol)}}}); err != nil {
		t.Fatal(err)
	}
	r.Advance(10 * time.Second)
	var g *inventory.Group
	for {
		var err error
		if g, err = (&inventory.Lister{ASG: w.ASG.(*autoscaling.Client), EC2: w.EC2.(*ec2.Client)}).Group(ctx, "web"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	js, err := w.InFlight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	work, err := w.TendPool(ctx, []*inventory.Group{g}, js)
	if err != nil {
		t.Fatal(err)
	}
	adopted := false
	for _, a := range work.Adoptions {
		if a.Volume == data && a.Instance == fresh {
			if _, err := w.Adopt(ctx, a); err != nil {
				t.Fatalf("adopting %s into %s: %v", data, fresh, err)
			}
			adopted = true
		}
	}
	if !adopted {
		t.Fatalf("the pool pass did not adopt %s into %s: %+v", data, fresh, work)
	}
	if v, _ := r.Volume(data); v.Attachment == nil || v.Attachment.InstanceID != fresh {
		t.Errorf("data volume %s not attached to %s after the adoption", data, fresh)
	}
	return fresh
}
