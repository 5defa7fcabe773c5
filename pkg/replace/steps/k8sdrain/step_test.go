package k8sdrain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/kube"
	"github.com/spotmax/spotmax/pkg/kube/kubetest"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// timeScale makes the simulated region's minutes pass in a fraction of a second: the 240 s
// proactive drain delay lasts 2.4 s.
const timeScale = 100

// replacementTest is a spotmax group in a simulated region whose instance is a node of a real
// kube-apiserver, with pods on it.
type replacementTest struct {
	t      *testing.T
	s      *kubetest.Server
	env    *simtest.Env
	ec2    *ec2.Client
	asg    *autoscaling.Client
	group  string
	old    string
	node   string // the old instance's node
	ns     string
	mu     sync.Mutex
	events []string // step events and workflow steps, in order
	fields map[string]map[string]any
	// newNode is set once the replacement's node has been registered.
	newNode chan string
}

func newReplacementTest(t *testing.T, tags map[string]string) *replacementTest {
	t.Helper()
	s := kubetest.Shared(t)
	env := simtest.Start(t, sim.Options{TimeScale: timeScale, Seed: time.Now().UnixNano()})
	rt := &replacementTest{t: t, s: s, env: env, ec2: ec2.NewFromConfig(env.Config), asg: autoscaling.NewFromConfig(env.Config),
		group: kubetest.Unique("eks-workers"), fields: map[string]map[string]any{}, newNode: make(chan string, 1)}
	all := map[string]string{
		groupconfig.TagGroup:                 rt.group,
		groupconfig.TagK8sConfigFilePath:     s.Kubeconfig,
		groupconfig.TagDetachingDelaySeconds: "5",
	}
	for k, v := range tags {
		all[k] = v
	}
	rt.old = env.CreateGroup(t, simtest.GroupSpec{Name: rt.group, Spot: true, Desired: 1, Tags: all})[0]

	// The old instance's node, named after its private DNS name as on EKS, with two pods of a
	// ReplicaSet and one of a DaemonSet.
	inst, _ := env.Region().Instance(rt.old)
	rt.node = kubetest.DNSName(inst.PrivateIP)
	s.Node(t, rt.node, kube.ProviderID(inst.AZ, rt.old), true)
	rt.ns = s.Namespace(t, "workers")
	rs := s.ReplicaSet(t, rt.ns, "web", map[string]string{"app": "web"})
	ds := s.DaemonSet(t, rt.ns, "logs", map[string]string{"app": "logs"})
	s.Pod(t, rt.ns, "web-a", rt.node, kubetest.PodSpec{Labels: map[string]string{"app": "web"}, Owner: &rs})
	s.Pod(t, rt.ns, "web-b", rt.node, kubetest.PodSpec{Labels: map[string]string{"app": "web"}, Owner: &rs, EmptyDir: true})
	s.Pod(t, rt.ns, "logs-x", rt.node, kubetest.PodSpec{Labels: map[string]string{"app": "logs"}, Owner: &ds})
	s.Kubelet(t, rt.node)
	return rt
}

func (rt *replacementTest) record(name string, fields map[string]any) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.events = append(rt.events, name)
	if fields != nil {
		rt.fields[name] = fields
	}
}

func (rt *replacementTest) recorded() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.events)
}

// registerReplacementNode plays the replacement's kubelet: it registers the node NotReady and
// makes it Ready after readyAfter of simulated time (never when negative).
func (rt *replacementTest) registerReplacementNode(id string, readyAfter time.Duration) {
	inst, ok := rt.env.Region().Instance(id)
	if !ok {
		rt.record("test: unknown replacement "+id, nil)
		return
	}
	name := kubetest.DNSName(inst.PrivateIP)
	ctx := context.Background()
	if _, err := kubetest.CreateNode(ctx, rt.s.Client, name, kube.ProviderID(inst.AZ, id), false); err != nil {
		rt.record("test: "+err.Error(), nil)
		return
	}
	rt.newNode <- name
	if readyAfter < 0 {
		return // never Ready
	}
	time.Sleep(rt.env.Region().Clock().Real(readyAfter))
	rt.record("test: replacement node ready", nil)
	if _, err := kubetest.SetReady(ctx, rt.s.Client, name, true); err != nil {
		rt.record("test: "+err.Error(), nil)
	}
}

// replace runs a replacement of the old instance with the drain step, registering the
// replacement's node when the step starts.
func (rt *replacementTest) replace(req replace.Request, step *Step, readyAfter time.Duration) (*replace.Result, error) {
	t := rt.t
	t.Helper()
	clk := rt.env.Region().Clock()
	step.EC2, step.Clock, step.Poll, step.EvictRetry = rt.ec2, clk, 5*time.Second, 50*time.Millisecond
	step.Event = rt.record
	step.Log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	w := replace.Workflow{EC2: rt.ec2, ASG: rt.asg, Steps: []replace.PreDetach{{Step: step, Metric: metrics.NodeDrained}}, Clock: clk,
		PollMin: 5 * time.Millisecond, PollMax: 50 * time.Millisecond, Metrics: metricsOf{rt},
		OnProgress: func(p replace.Progress) {
			if p.Done {
				return
			}
			rt.record("step: "+p.Step, nil)
			if p.Step == StepName {
				wg.Add(1)
				go func() { defer wg.Done(); rt.registerReplacementNode(p.New, readyAfter) }()
			}
		}}
	g, err := (&inventory.Lister{ASG: rt.asg, EC2: rt.ec2}).Group(context.Background(), rt.group)
	if err != nil {
		t.Fatal(err)
	}
	req.InstanceID = rt.old
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := w.Replace(ctx, g, req)
	select {
	case name := <-rt.newNode:
		rt.s.DeleteNodeAtCleanup(t, name)
	default:
	}
	return res, err
}

// metricsOf records the workflow's metrics events among the test's events ("metric: Name").
type metricsOf struct{ rt *replacementTest }

func (m metricsOf) Record(_ context.Context, e metrics.Event) {
	m.rt.record("metric: "+string(e.Name), nil)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func index(events []string, name string) int { return slices.Index(events, name) }

func TestStepDrainsTheOldNodeOnceTheReplacementsNodeIsReady(t *testing.T) {
	rt := newReplacementTest(t, map[string]string{groupconfig.TagK8sNodeDrainGraceSecond: "30"})
	res, err := rt.replace(replace.Request{Reason: replace.ReasonLifetime}, &Step{}, 30*time.Second)
	if err != nil {
		t.Fatalf("replacement failed: %v (events %v)", err, rt.recorded())
	}
	if res.New == "" || len(res.Warnings) > 0 {
		t.Errorf("result %+v: want a replacement and no warnings", res)
	}
	ev := rt.recorded()
	t.Logf("events: %v", ev)
	// Cordon at once, wait for the replacement's node (registered NotReady, Ready 30 s later),
	// drain, then detach.
	// The registration's metric is recorded once the step succeeded.
	order := []string{"step: " + StepName, EventCordoned, "test: replacement node ready", EventReplacementReady, EventDrained,
		"metric: " + string(metrics.NodeDrained), "step: detach"}
	for i := 1; i < len(order); i++ {
		if a, b := index(ev, order[i-1]), index(ev, order[i]); a < 0 || b < 0 || a > b {
			t.Errorf("%q (at %d) should come before %q (at %d)", order[i-1], a, order[i], b)
		}
	}
	rt.mu.Lock()
	waited := rt.fields[EventReplacementReady]["waited_seconds"].(float64)
	pods := rt.fields[EventDrained]["pods"]
	rt.mu.Unlock()
	if waited < 20 || waited >= 240 {
		t.Errorf("waited %.0fs for the replacement's node, want about 30s and less than the 240s delay", waited)
	}
	if pods != 2 {
		t.Errorf("drained %v pods, want 2", pods)
	}
	if !rt.s.Unschedulable(t, rt.node) {
		t.Error("old node is not cordoned")
	}
	if rt.s.PodExists(t, rt.ns, "web-a") || rt.s.PodExists(t, rt.ns, "web-b") {
		t.Error("old node's pods were not evicted")
	}
	if !rt.s.PodExists(t, rt.ns, "logs-x") {
		t.Error("the DaemonSet pod was evicted")
	}
	if inst, _ := rt.env.Region().Instance(rt.old); inst.State != "terminated" && inst.State != "shutting-down" {
		t.Errorf("old instance is %s, want terminated", inst.State)
	}
}

func TestStepDrainsAfterTheDelayWhenTheReplacementsNodeIsLate(t *testing.T) {
	rt := newReplacementTest(t, map[string]string{groupconfig.TagK8sNodeDrainGraceSecond: "0",
		groupconfig.TagPreactionK8sDelayDrainingSecs: "60"})
	res, err := rt.replace(replace.Request{Reason: replace.ReasonManual}, &Step{}, -1)
	if err != nil {
		t.Fatalf("replacement failed: %v", err)
	}
	ev := rt.recorded()
	if index(ev, EventReplacementLate) < 0 || index(ev, EventReplacementReady) >= 0 || index(ev, EventDrained) < 0 {
		t.Fatalf("events %v: want the drain after the delay without a ready replacement", ev)
	}
	rt.mu.Lock()
	waited := rt.fields[EventReplacementLate]["waited_seconds"].(float64)
	rt.mu.Unlock()
	if waited < 60 || waited > 90 {
		t.Errorf("waited %.0fs, want the 60s of preaction_k8s_delay_draining_secs", waited)
	}
	if res.New == "" || rt.s.PodExists(t, rt.ns, "web-a") {
		t.Errorf("result %+v; web-a still there: %v", res, rt.s.PodExists(t, rt.ns, "web-a"))
	}
}

func TestStepFailureAbortsAProactiveReplacementAndUncordons(t *testing.T) {
	rt := newReplacementTest(t, map[string]string{groupconfig.TagK8sNodeDrainGraceSecond: "0"})
	rt.s.PDB(t, rt.ns, "web", map[string]string{"app": "web"}, 2)
	rt.s.SetPDBAllowed(t, rt.ns, "web", 2, 2, 0)
	_, err := rt.replace(replace.Request{Reason: replace.ReasonLifetime}, &Step{DrainMargin: 500 * time.Millisecond}, 0)
	t.Logf("error: %v", err)
	if !errors.Is(err, replace.ErrAborted) || !errors.Is(err, kube.ErrDrainTimeout) {
		t.Fatalf("got %v, want an aborted replacement because the drain timed out", err)
	}
	for _, want := range []string{"web-a", "needs 2 healthy pods", "was uncordoned and keeps serving"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q", want)
		}
	}
	ev := rt.recorded()
	if index(ev, EventDrainFailed) < 0 || index(ev, EventUncordoned) < 0 {
		t.Errorf("events %v: want drain failed and uncordoned", ev)
	}
	if rt.s.Unschedulable(t, rt.node) {
		t.Error("old node stays cordoned after the abort")
	}
	if n, err := rt.s.Client.CoreV1().Nodes().Get(context.Background(), rt.node, metav1.GetOptions{}); err != nil || n.Annotations[AnnotationCordonedBy] != "" {
		t.Errorf("annotation %s left on the node after the abort (%v)", AnnotationCordonedBy, err)
	}
	if !rt.s.PodExists(t, rt.ns, "web-a") || !rt.s.PodExists(t, rt.ns, "web-b") {
		t.Error("pods were evicted despite the budget")
	}
	g, _ := rt.env.Region().Group(rt.group)
	var members []string
	for _, m := range g.Members {
		members = append(members, m.InstanceID+"/"+m.LifecycleState)
	}
	if fmt.Sprint(members) != fmt.Sprintf("[%s/InService]", rt.old) {
		t.Errorf("group members %v, want only the old instance in service", members)
	}
}

func TestStepFailureOnAnInterruptionIsAWarning(t *testing.T) {
	rt := newReplacementTest(t, map[string]string{groupconfig.TagK8sNodeDrainGraceSecond: "0"})
	rt.s.PDB(t, rt.ns, "web", map[string]string{"app": "web"}, 2)
	rt.s.SetPDBAllowed(t, rt.ns, "web", 2, 2, 0)
	deadline := rt.env.Region().Clock().Now().Add(2 * time.Minute)
	res, err := rt.replace(replace.Request{Reason: replace.ReasonInterruption, Deadline: deadline}, &Step{DrainMargin: 500 * time.Millisecond}, 0)
	if err != nil {
		t.Fatalf("an interrupted instance's replacement failed: %v", err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], StepName) || !strings.Contains(res.Warnings[0], "stays cordoned") {
		t.Errorf("warnings %q: want the drain failure, node cordoned", res.Warnings)
	}
	if !rt.s.Unschedulable(t, rt.node) {
		t.Error("the interrupted instance's node was uncordoned")
	}
	if res.New == "" {
		t.Error("no replacement")
	}
}

func TestStepIsEnabledByTheKubeconfigTag(t *testing.T) {
	s := &Step{}
	if s.Enabled(&inventory.Group{Config: &groupconfig.Config{}}) || s.Enabled(&inventory.Group{}) {
		t.Error("enabled without spotmax:k8s_config_file_path")
	}
	if !s.Enabled(&inventory.Group{Config: &groupconfig.Config{K8sConfigFilePath: "/data/spotmax/k8sconfig"}}) {
		t.Error("not enabled with spotmax:k8s_config_file_path")
	}
	if s.Name() != "k8s-drain" {
		t.Errorf("name %q", s.Name())
	}
}

// A proactive abort gives back only the cordon the step owns: its own (also from a run before a
// crash, marked by the annotation), never an operator's.
func TestStepUncordonsOnlyItsOwnCordon(t *testing.T) {
	s := kubetest.Shared(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name       string
		annotation string // "" = cordoned by an operator
		want       bool   // unschedulable after the abort
	}{
		{"cordoned by an operator", "", true},
		{"cordoned by this step before a crash", "ours", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tn := s.WorkerNode(t)
			s.PDB(t, tn.Namespace, "web", map[string]string{"app": "web"}, 2)
			s.SetPDBAllowed(t, tn.Namespace, "web", 2, 2, 0)
			c, err := kube.Connect(ctx, kube.Source{Path: s.Kubeconfig, From: "test"}, kube.ConnectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			n, err := c.Node(ctx, tn.Name)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Cordon(ctx, n); err != nil {
				t.Fatal(err)
			}
			if tt.annotation != "" {
				if err := c.Annotate(ctx, tn.Name, AnnotationCordonedBy, &tn.ID); err != nil {
					t.Fatal(err)
				}
			}
			g := &inventory.Group{Name: "web", Config: &groupconfig.Config{Group: "web", K8sConfigFilePath: s.Kubeconfig}}
			step := &Step{DrainMargin: 300 * time.Millisecond, EvictRetry: 50 * time.Millisecond}
			err = step.Run(ctx, replace.Target{Group: g, Old: inventory.Instance{ID: tn.ID}, New: "i-0new", Reason: replace.ReasonLifetime})
			if !errors.Is(err, kube.ErrDrainTimeout) {
				t.Fatalf("got %v, want a drain timeout", err)
			}
			got := s.Unschedulable(t, tn.Name)
			if got != tt.want {
				t.Errorf("unschedulable = %v, want %v (error: %v)", got, tt.want, err)
			}
			if !tt.want && strings.Contains(err.Error(), "stays cordoned") {
				t.Errorf("error %q says the node stays cordoned", err)
			}
		})
	}
}
