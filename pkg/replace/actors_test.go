package replace_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// mutation is one call that changed something in AWS, as an actor (one process: one run of a
// workflow) made it. Calls are ordered by their return: an SDK retry lands a call later than it
// was made.
type mutation struct {
	seq    int
	actor  string
	action string
	ids    []string
}

// actorLog records every changing call each actor's workflow made that reached AWS, in one
// global order, so that a test can tell whether two actors drove one instance at once, what
// was terminated and by whom, and what was launched.
type actorLog struct {
	mu       sync.Mutex
	seq      int
	muts     []mutation
	launched map[string]string // instance id → client token of its launch
}

func newActorLog() *actorLog { return &actorLog{launched: map[string]string{}} }

func (l *actorLog) add(actor, action string, ids ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.muts = append(l.muts, mutation{seq: l.seq, actor: actor, action: action, ids: ids})
}

// wrap returns clients that record actor's changing calls in the log.
func (l *actorLog) wrap(actor string, e replace.EC2API, a replace.ASGAPI) (replace.EC2API, replace.ASGAPI) {
	return recEC2{EC2API: e, l: l, actor: actor}, recASG{ASGAPI: a, l: l, actor: actor}
}

// mutations returns the recorded calls naming id (all when id is "").
func (l *actorLog) mutations(id string) []mutation {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []mutation
	for _, m := range l.muts {
		if id == "" {
			out = append(out, m)
			continue
		}
		for _, x := range m.ids {
			if x == id {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// terminated returns the instances the actors terminated (EC2 or Auto Scaling), by actor.
func (l *actorLog) terminated() map[string]string {
	out := map[string]string{}
	for _, m := range l.mutations("") {
		if m.action == "ec2:TerminateInstances" || m.action == "autoscaling:TerminateInstanceInAutoScalingGroup" {
			for _, id := range m.ids {
				out[id] = m.actor
			}
		}
	}
	return out
}

// checkOneDriver fails when two actors changed things for one replacement at once: each actor's
// changing calls form an interval of the global order, and no two intervals may overlap. An
// actor that loses a claim race writes its claim and nothing else; such a lone claim is left
// out.
func (l *actorLog) checkOneDriver(t testing.TB, what string) {
	t.Helper()
	type span struct{ first, last int }
	spans := map[string]*span{}
	var actors []string
	muts := l.mutations("")
	n := map[string]int{}
	for _, m := range muts {
		n[m.actor]++
	}
	for _, m := range muts {
		if n[m.actor] == 1 && m.action == "ec2:CreateTags" {
			// A claim that lost: written, read back overwritten, backed off. (Calls are ordered
			// by their return, not by when AWS applied them.)
			continue
		}
		s, ok := spans[m.actor]
		if !ok {
			s = &span{first: m.seq}
			spans[m.actor] = s
			actors = append(actors, m.actor)
		}
		s.last = m.seq
	}
	for i, a := range actors {
		for _, b := range actors[i+1:] {
			sa, sb := spans[a], spans[b]
			if sa.first <= sb.last && sb.first <= sa.last {
				t.Errorf("%s: actors %s (calls %d..%d) and %s (calls %d..%d) drove the replacement at the same time:\n%s",
					what, a, sa.first, sa.last, b, sb.first, sb.last, l.dump())
				return
			}
		}
	}
}

func (l *actorLog) dump() string {
	var b strings.Builder
	for _, m := range l.mutations("") {
		fmt.Fprintf(&b, "  %3d %-12s %s %v\n", m.seq, m.actor, m.action, m.ids)
	}
	return b.String()
}

type recEC2 struct {
	replace.EC2API
	l     *actorLog
	actor string
}

func (x recEC2) RunInstances(ctx context.Context, in *ec2.RunInstancesInput, o ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	out, err := x.EC2API.RunInstances(ctx, in, o...)
	var ids []string
	if err == nil {
		x.l.mu.Lock()
		for _, i := range out.Instances {
			ids = append(ids, aws.ToString(i.InstanceId))
			x.l.launched[aws.ToString(i.InstanceId)] = aws.ToString(in.ClientToken)
		}
		x.l.mu.Unlock()
	}
	x.l.add(x.actor, "ec2:RunInstances", append(ids, "token:"+aws.ToString(in.ClientToken))...)
	return out, err
}
func (x recEC2) TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, o ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	defer x.l.add(x.actor, "ec2:TerminateInstances", in.InstanceIds...)
	return x.EC2API.TerminateInstances(ctx, in, o...)
}
func (x recEC2) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, o ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	defer x.l.add(x.actor, "ec2:CreateTags", in.Resources...)
	return x.EC2API.CreateTags(ctx, in, o...)
}
func (x recEC2) DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, o ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error) {
	defer x.l.add(x.actor, "ec2:DeleteTags", in.Resources...)
	return x.EC2API.DeleteTags(ctx, in, o...)
}
func (x recEC2) AttachVolume(ctx context.Context, in *ec2.AttachVolumeInput, o ...func(*ec2.Options)) (*ec2.AttachVolumeOutput, error) {
	defer x.l.add(x.actor, "ec2:AttachVolume", aws.ToString(in.VolumeId), aws.ToString(in.InstanceId))
	return x.EC2API.AttachVolume(ctx, in, o...)
}
func (x recEC2) DetachVolume(ctx context.Context, in *ec2.DetachVolumeInput, o ...func(*ec2.Options)) (*ec2.DetachVolumeOutput, error) {
	defer x.l.add(x.actor, "ec2:DetachVolume", aws.ToString(in.VolumeId), aws.ToString(in.InstanceId))
	return x.EC2API.DetachVolume(ctx, in, o...)
}
func (x recEC2) ModifyInstanceAttribute(ctx context.Context, in *ec2.ModifyInstanceAttributeInput, o ...func(*ec2.Options)) (*ec2.ModifyInstanceAttributeOutput, error) {
	defer x.l.add(x.actor, "ec2:ModifyInstanceAttribute", aws.ToString(in.InstanceId))
	return x.EC2API.ModifyInstanceAttribute(ctx, in, o...)
}

type recASG struct {
	replace.ASGAPI
	l     *actorLog
	actor string
}

func (x recASG) AttachInstances(ctx context.Context, in *autoscaling.AttachInstancesInput, o ...func(*autoscaling.Options)) (*autoscaling.AttachInstancesOutput, error) {
	defer x.l.add(x.actor, "autoscaling:AttachInstances", append([]string{aws.ToString(in.AutoScalingGroupName)}, in.InstanceIds...)...)
	return x.ASGAPI.AttachInstances(ctx, in, o...)
}
func (x recASG) DetachInstances(ctx context.Context, in *autoscaling.DetachInstancesInput, o ...func(*autoscaling.Options)) (*autoscaling.DetachInstancesOutput, error) {
	defer x.l.add(x.actor, "autoscaling:DetachInstances", append([]string{aws.ToString(in.AutoScalingGroupName)}, in.InstanceIds...)...)
	return x.ASGAPI.DetachInstances(ctx, in, o...)
}
func (x recASG) UpdateAutoScalingGroup(ctx context.Context, in *autoscaling.UpdateAutoScalingGroupInput, o ...func(*autoscaling.Options)) (*autoscaling.UpdateAutoScalingGroupOutput, error) {
	defer x.l.add(x.actor, "autoscaling:UpdateAutoScalingGroup", aws.ToString(in.AutoScalingGroupName))
	return x.ASGAPI.UpdateAutoScalingGroup(ctx, in, o...)
}
func (x recASG) CreateOrUpdateTags(ctx context.Context, in *autoscaling.CreateOrUpdateTagsInput, o ...func(*autoscaling.Options)) (*autoscaling.CreateOrUpdateTagsOutput, error) {
	var ids []string
	for _, t := range in.Tags {
		ids = append(ids, aws.ToString(t.ResourceId))
	}
	defer x.l.add(x.actor, "autoscaling:CreateOrUpdateTags", ids...)
	return x.ASGAPI.CreateOrUpdateTags(ctx, in, o...)
}
func (x recASG) DeleteTags(ctx context.Context, in *autoscaling.DeleteTagsInput, o ...func(*autoscaling.Options)) (*autoscaling.DeleteTagsOutput, error) {
	var ids []string
	for _, t := range in.Tags {
		ids = append(ids, aws.ToString(t.ResourceId))
	}
	defer x.l.add(x.actor, "autoscaling:DeleteTags", ids...)
	return x.ASGAPI.DeleteTags(ctx, in, o...)
}
func (x recASG) SetDesiredCapacity(ctx context.Context, in *autoscaling.SetDesiredCapacityInput, o ...func(*autoscaling.Options)) (*autoscaling.SetDesiredCapacityOutput, error) {
	defer x.l.add(x.actor, "autoscaling:SetDesiredCapacity", aws.ToString(in.AutoScalingGroupName))
	return x.ASGAPI.SetDesiredCapacity(ctx, in, o...)
}
func (x recASG) SuspendProcesses(ctx context.Context, in *autoscaling.SuspendProcessesInput, o ...func(*autoscaling.Options)) (*autoscaling.SuspendProcessesOutput, error) {
	defer x.l.add(x.actor, "autoscaling:SuspendProcesses", aws.ToString(in.AutoScalingGroupName))
	return x.ASGAPI.SuspendProcesses(ctx, in, o...)
}
func (x recASG) TerminateInstanceInAutoScalingGroup(ctx context.Context, in *autoscaling.TerminateInstanceInAutoScalingGroupInput, o ...func(*autoscaling.Options)) (*autoscaling.TerminateInstanceInAutoScalingGroupOutput, error) {
	defer x.l.add(x.actor, "autoscaling:TerminateInstanceInAutoScalingGroup", aws.ToString(in.InstanceId))
	return x.ASGAPI.TerminateInstanceInAutoScalingGroup(ctx, in, o...)
}

// otherGroup is a second spotmax group, "db", whose instances no replacement of "web" may touch.
type otherGroup struct {
	name    string
	members []string
	volumes []string
}

// addOtherGroup creates the group db with a data volume per member.
func (f *fixture) addOtherGroup(t testing.TB) *otherGroup {
	t.Helper()
	members := f.env.CreateGroup(t, simtest.GroupSpec{Name: "db", Spot: true, Desired: 1, Max: 2, DataDevice: "/dev/sdf",
		Tags:        map[string]string{groupconfig.TagGroup: "db", groupconfig.TagPersistenceDev: "/dev/sdf", groupconfig.TagPersistenceMountPath: "/data"},
		NoPropagate: []string{groupconfig.TagPersistenceDev}})
	o := &otherGroup{name: "db", members: members}
	for _, id := range members {
		in, _ := f.env.Region().Instance(id)
		for _, bd := range in.BlockDevices {
			o.volumes = append(o.volumes, bd.VolumeID)
		}
	}
	return o
}

// checkUntouched fails when any actor changed the other group, one of its instances or volumes,
// or when one of its instances no longer runs in it with its volumes attached.
func (o *otherGroup) checkUntouched(t testing.TB, r *sim.Region, l *actorLog, what string) {
	t.Helper()
	for _, id := range append(append([]string{o.name}, o.members...), o.volumes...) {
		if ms := l.mutations(id); len(ms) > 0 {
			t.Errorf("%s: %s of the other group %s was touched: %+v", what, id, o.name, ms)
		}
	}
	for _, id := range o.members {
		in, _ := r.Instance(id)
		if g, ok := r.GroupOf(id); in.State != sim.StateRunning || !ok || g != o.name {
			t.Errorf("%s: %s of group %s is %s in group %q", what, id, o.name, in.State, g)
		}
	}
	for _, v := range o.volumes {
		vol, ok := r.Volume(v)
		if !ok || vol.Attachment == nil {
			t.Errorf("%s: volume %s of group %s is gone or detached", what, v, o.name)
		}
	}
}

// forge writes tags on an instance with the raw EC2 client, as root on that instance could with
// a role that may tag it: what an attacker, or a half-written journal, leaves.
func (f *fixture) forge(t testing.TB, id string, tags map[string]string) {
	t.Helper()
	var ts []ec2types.Tag
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ts = append(ts, ec2types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	if _, err := f.ec2.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{id}, Tags: ts}); err != nil {
		t.Fatalf("forging tags on %s: %v", id, err)
	}
}

// unforge removes every spotmax:state:* tag of an instance, what the UntrustedError tells the
// operator to do.
func (f *fixture) unforge(t testing.TB, id string) {
	t.Helper()
	in, _ := f.env.Region().Instance(id)
	var ts []ec2types.Tag
	for k := range in.Tags {
		if strings.HasPrefix(k, groupconfig.StatePrefix) {
			ts = append(ts, ec2types.Tag{Key: aws.String(k)})
		}
	}
	if len(ts) == 0 {
		return
	}
	if _, err := f.ec2.DeleteTags(context.Background(), &ec2.DeleteTagsInput{Resources: []string{id}, Tags: ts}); err != nil {
		t.Fatalf("removing forged tags of %s: %v", id, err)
	}
}

// forgeries are the journals an attacker on an instance, or a half-written journal, may leave;
// each must be refused (ErrUntrusted) or resumed within its group, never acted on elsewhere.
func forgeries(other string) map[string]map[string]string {
	return map[string]map[string]string{
		// The attack of issue 11 case 3: the replacement is an instance of another group.
		"foreign-replacement": {groupconfig.StateJournalGroup: "web", groupconfig.StatePhase: string(replace.PhaseLaunched),
			groupconfig.StateReason: string(replace.ReasonManual), groupconfig.StateReplacement: other},
		// A journal that names another group.
		"foreign-group": {groupconfig.StateJournalGroup: "db", groupconfig.StatePhase: string(replace.PhaseLaunched),
			groupconfig.StateReason: string(replace.ReasonManual), groupconfig.StateReplacement: other},
		// A phase and nothing else.
		"phase-only": {groupconfig.StatePhase: string(replace.PhaseLaunched)},
		// A forged lease of a made-up owner on top of the foreign replacement.
		"foreign-leased": {groupconfig.StateJournalGroup: "web", groupconfig.StatePhase: string(replace.PhaseJoined),
			groupconfig.StateReason: string(replace.ReasonManual), groupconfig.StateReplacement: other,
			groupconfig.StateToken: "forged", groupconfig.StateOwner: "attacker", groupconfig.StateLeaseUntil: "2000-01-01T00:00:00Z"},
	}
}

// addHooksAndDraining gives the group a target group with the given deregistration delay and
// launch and terminate lifecycle hooks that a hook consumer would complete (CONTINUE after the
// minimum heartbeat), through the Auto Scaling API as a user would.
func (f *fixture) addHooksAndDraining(t testing.TB, delay time.Duration, hooks, lb bool) {
	t.Helper()
	ctx := context.Background()
	if lb {
		arn, err := f.env.Region().CreateTargetGroup(sim.TargetGroupSpec{Name: "web-tg", DeregistrationDelay: &delay})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.asg.AttachLoadBalancerTargetGroups(ctx, &autoscaling.AttachLoadBalancerTargetGroupsInput{
			AutoScalingGroupName: aws.String(f.group), TargetGroupARNs: []string{arn}}); err != nil {
			t.Fatalf("attaching target group: %v", err)
		}
	}
	if hooks {
		for name, tr := range map[string]string{"launch": "autoscaling:EC2_INSTANCE_LAUNCHING", "terminate": "autoscaling:EC2_INSTANCE_TERMINATING"} {
			if _, err := f.asg.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{AutoScalingGroupName: aws.String(f.group),
				LifecycleHookName: aws.String(name), LifecycleTransition: aws.String(tr), HeartbeatTimeout: aws.Int32(30),
				DefaultResult: aws.String("CONTINUE")}); err != nil {
				t.Fatalf("putting lifecycle hook %s: %v", name, err)
			}
		}
	}
}

// rendezvous holds each actor's first journal write until n actors have arrived there or the
// others have left (returned without writing one).
type rendezvous struct {
	mu      sync.Mutex
	waiting int
	ch      chan struct{}
	closed  bool
}

func newRendezvous(n int) *rendezvous { return &rendezvous{waiting: n, ch: make(chan struct{})} }

func (r *rendezvous) arrive() {
	r.mu.Lock()
	r.waiting--
	if r.waiting <= 0 && !r.closed {
		r.closed = true
		close(r.ch)
	}
	r.mu.Unlock()
	<-r.ch
}

// leave counts an actor that is done as arrived.
func (r *rendezvous) leave() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.ch)
	}
}

// hold wraps e so that its first journal write (a CreateTags with the phase key) arrives first.
func (r *rendezvous) hold(e replace.EC2API) replace.EC2API {
	var once sync.Once
	return hookEC2{EC2API: e, key: groupconfig.StatePhase, before: func() { once.Do(r.arrive) }}
}
