package kube

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/internal/syncbuf"
	"github.com/spotmax/spotmax/pkg/internal/testwait"
	"github.com/spotmax/spotmax/pkg/kube/kubetest"
)

// syncBuffer is a buffer safe for concurrent writers and the reading test.
type syncBuffer = syncbuf.Buffer

// node is a test node with pods: two of a ReplicaSet (one with an emptyDir), one of a DaemonSet.
type testNode struct {
	name, ns string
	id       string // the instance in the node's providerID
	web      []string
	daemon   string
}

func newTestNode(t *testing.T, s *kubetest.Server) testNode {
	t.Helper()
	w := s.WorkerNode(t)
	return testNode{name: w.Name, ns: w.Namespace, id: w.ID, web: w.Web, daemon: w.Daemon}
}

func TestDrainEvictsAndLeavesDaemonSetPods(t *testing.T) {
	s := kubetest.Shared(t)
	c := testClient(t, s, nil)
	ctx := context.Background()
	tn := newTestNode(t, s)
	other := s.Node(t, kubetest.Unique("ip-10-0-1-2"), "", true)
	s.Pod(t, tn.ns, "elsewhere", other.Name, kubetest.PodSpec{})

	node, err := c.Node(ctx, tn.name)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := c.PlanDrain(ctx, tn.name, DrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := refs(plan.Evict), tn.ns+"/web-a "+tn.ns+"/web-b"; got != want || len(plan.Refused) > 0 {
		t.Fatalf("plan evicts %q (refused %v), want %q", got, plan.Refused, want)
	}
	if !strings.Contains(plan.Warnings, "DaemonSet") || !strings.Contains(plan.Warnings, tn.ns+"/logs-x") {
		t.Errorf("plan warnings %q do not mention the DaemonSet pod", plan.Warnings)
	}
	if s.Unschedulable(t, tn.name) || !s.PodExists(t, tn.ns, "web-a") {
		t.Fatal("the plan changed something")
	}

	var mu sync.Mutex
	var seen []DrainProgress
	res, err := c.Drain(ctx, node, DrainOptions{GracePeriod: 0, Timeout: time.Minute, Progress: func(p DrainProgress) {
		mu.Lock()
		seen = append(seen, p)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := refs(res.Evicted), tn.ns+"/web-a "+tn.ns+"/web-b"; got != want {
		t.Errorf("evicted %q, want %q", got, want)
	}
	if !s.Unschedulable(t, tn.name) {
		t.Error("node is not cordoned")
	}
	for _, p := range tn.web {
		if s.PodExists(t, tn.ns, p) {
			t.Errorf("pod %s was not evicted", p)
		}
	}
	if !s.PodExists(t, tn.ns, tn.daemon) {
		t.Error("the DaemonSet pod was evicted")
	}
	if !s.PodExists(t, tn.ns, "elsewhere") {
		t.Error("a pod of another node was evicted")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 2 || seen[0].Left != 2 || seen[0].Total != 2 || seen[len(seen)-1].Left != 0 {
		t.Errorf("progress %+v, want from 2 left to 0", seen)
	}
}

func TestDrainRefusesBarePodsUnlessForced(t *testing.T) {
	s := kubetest.Shared(t)
	c := testClient(t, s, nil)
	ctx := context.Background()
	ns := s.Namespace(t, "bare")
	name := kubetest.Unique("ip-10-0-2-1")
	s.Node(t, name, "", true)
	s.Pod(t, ns, "bare", name, kubetest.PodSpec{})
	node, err := c.Node(ctx, name)
	if err != nil {
		t.Fatal(err)
	}

	_, err = c.Drain(ctx, node, DrainOptions{GracePeriod: 0})
	var derr *DrainError
	if !errors.As(err, &derr) || !strings.Contains(err.Error(), "Pods that declare no controller") || !strings.Contains(err.Error(), ns+"/bare") {
		t.Fatalf("got %v, want a refusal naming the bare pod", err)
	}
	if strings.Contains(err.Error(), "cordoned") || s.Unschedulable(t, node.Name) || !s.PodExists(t, ns, "bare") {
		t.Fatalf("a refused drain changed something: %v", err)
	}

	if _, err := c.Drain(ctx, node, DrainOptions{GracePeriod: 0, Force: true}); err != nil {
		t.Fatal(err)
	}
	if s.PodExists(t, ns, "bare") {
		t.Error("--force did not evict the bare pod")
	}
}

func TestDrainRetriesWhileABudgetBlocks(t *testing.T) {
	s := kubetest.Shared(t)
	logs := &syncBuffer{}
	c := testClient(t, s, slog.New(slog.NewTextHandler(logs, nil)))
	tn := newTestNode(t, s)
	s.PDB(t, tn.ns, "web", map[string]string{"app": "web"}, 2)
	// Processed by the (absent) disruption controller: no disruption allowed. An unprocessed
	// budget would answer with Retry-After: 10, which client-go sleeps through by itself.
	s.SetPDBAllowed(t, tn.ns, "web", 2, 2, 0)
	node, err := c.Node(context.Background(), tn.name)
	if err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := c.Drain(context.Background(), node, DrainOptions{GracePeriod: 0, Timeout: time.Minute, EvictRetry: 50 * time.Millisecond})
		done <- err
	}()
	testwait.For(t, "an eviction refused by the budget", 30*time.Second, func() bool { return strings.Contains(logs.String(), "disruption budget") })
	select {
	case err := <-done:
		t.Fatalf("drain ended while the budget blocks: %v", err)
	default:
	}
	if !s.PodExists(t, tn.ns, "web-a") || !s.PodExists(t, tn.ns, "web-b") {
		t.Fatal("a pod was evicted while the budget allowed no disruption")
	}
	// What the disruption controller would write once replacements run elsewhere.
	s.SetPDBAllowed(t, tn.ns, "web", 4, 2, 2)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s.PodExists(t, tn.ns, "web-a") || s.PodExists(t, tn.ns, "web-b") {
		t.Error("pods not evicted after the budget allowed it")
	}
}

func TestDrainTimeoutListsTheBlockedPodsAndKeepsTheNodeCordoned(t *testing.T) {
	s := kubetest.Shared(t)
	c := testClient(t, s, nil)
	tn := newTestNode(t, s)
	s.PDB(t, tn.ns, "web", map[string]string{"app": "web"}, 2)
	s.SetPDBAllowed(t, tn.ns, "web", 2, 2, 0)
	node, err := c.Node(context.Background(), tn.name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Drain(context.Background(), node, DrainOptions{GracePeriod: 0, Timeout: 500 * time.Millisecond, EvictRetry: 50 * time.Millisecond})
	t.Logf("error: %v", err)
	var derr *DrainError
	if !errors.As(err, &derr) || !errors.Is(err, ErrDrainTimeout) {
		t.Fatalf("got %v, want a *DrainError wrapping ErrDrainTimeout", err)
	}
	if len(derr.Blocked) != 2 || !derr.Cordoned {
		t.Fatalf("blocked %+v cordoned %v, want both web pods and cordoned", derr.Blocked, derr.Cordoned)
	}
	for _, b := range derr.Blocked {
		if !strings.Contains(b.Why, "needs 2 healthy pods and has 2 currently") {
			t.Errorf("pod %s: why %q does not name the budget", b.Pod, b.Why)
		}
	}
	for _, want := range []string{"timed out after 500ms", "2 pod(s) left", tn.ns + "/web-a", "stays cordoned"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q", want)
		}
	}
	if !s.Unschedulable(t, tn.name) {
		t.Error("node is not cordoned")
	}
}

// With a grace period, evicted pods terminate before they go; the kubelet stand-in finishes
// them as a kubelet would after the containers stop.
func TestDrainWaitsForTerminatingPods(t *testing.T) {
	s := kubetest.Shared(t)
	c := testClient(t, s, nil)
	tn := newTestNode(t, s)
	node, err := c.Node(context.Background(), tn.name)
	if err != nil {
		t.Fatal(err)
	}
	s.Kubelet(t, tn.name)
	res, err := c.Drain(context.Background(), node, DrainOptions{GracePeriod: 30 * time.Second, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Evicted) != 2 || s.PodExists(t, tn.ns, "web-a") || s.PodExists(t, tn.ns, "web-b") {
		t.Errorf("evicted %v; web pods still there", res.Evicted)
	}
}

func TestDrainTimeoutExplainsTerminatingPods(t *testing.T) {
	s := kubetest.Shared(t)
	c := testClient(t, s, nil)
	tn := newTestNode(t, s)
	node, err := c.Node(context.Background(), tn.name)
	if err != nil {
		t.Fatal(err)
	}
	// No kubelet: evicted pods stay Terminating for their whole grace period.
	_, err = c.Drain(context.Background(), node, DrainOptions{GracePeriod: 30 * time.Second, Timeout: 300 * time.Millisecond})
	var derr *DrainError
	if !errors.As(err, &derr) || len(derr.Blocked) != 2 {
		t.Fatalf("got %v, want both web pods blocked", err)
	}
	for _, b := range derr.Blocked {
		if !strings.Contains(b.Why, "terminating since") || !strings.Contains(b.Why, "grace period of 30s") {
			t.Errorf("pod %s: why %q", b.Pod, b.Why)
		}
	}
}

func refs(ps []PodRef) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return strings.Join(out, " ")
}
