package kube

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spotmax/spotmax/pkg/internal/testwait"
	"github.com/spotmax/spotmax/pkg/kube/kubetest"
)

// evictionCounter counts the eviction requests of a client: real ones and dry runs.
type evictionCounter struct{ evictions, dryRuns atomic.Int64 }

func (e *evictionCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/eviction") && r.Body != nil {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				return nil, err
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
			if strings.Contains(string(b), `"dryRun"`) {
				e.dryRuns.Add(1)
			} else {
				e.evictions.Add(1)
			}
		}
		return rt.RoundTrip(r)
	})
}

// A budget refuses every eviction (429) until the timeout: each pod's eviction is retried
// every EvictRetry, and the error explains each pod left with one dry-run eviction, naming the
// budget.
func TestDrainRetriesRefusedEvictionsAndExplainsOnce(t *testing.T) {
	s := kubetest.Shared(t)
	tn := newTestNode(t, s)
	s.PDB(t, tn.ns, "web", map[string]string{"app": "web"}, 2)
	s.SetPDBAllowed(t, tn.ns, "web", 2, 2, 0)
	var ev evictionCounter
	c := connectTest(t, s, ConnectOptions{WrapTransport: ev.wrap})
	node, err := c.Node(context.Background(), tn.name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Drain(context.Background(), node, DrainOptions{GracePeriod: 0, Timeout: 400 * time.Millisecond, EvictRetry: 20 * time.Millisecond})
	var derr *DrainError
	if !errors.As(err, &derr) || !errors.Is(err, ErrDrainTimeout) {
		t.Fatalf("got %v, want a drain timeout", err)
	}
	want := tn.ns + "/web-a (The disruption budget web needs 2 healthy pods and has 2 currently)"
	if !strings.Contains(err.Error(), want) || !derr.Cordoned {
		t.Errorf("error %q does not contain %q or the node is not reported cordoned", err, want)
	}
	if n, d := ev.evictions.Load(), ev.dryRuns.Load(); n < 4 || d != 2 {
		t.Errorf("%d evictions (want retries of both pods) and %d dry runs (want 1 per pod left)", n, d)
	}
	if !s.PodExists(t, tn.ns, "web-a") || !s.PodExists(t, tn.ns, "web-b") {
		t.Error("a pod was evicted although the budget allowed no disruption")
	}
}

// Two budgets over one pod: the API refuses its eviction with 500 ("more than one
// PodDisruptionBudget"), which no retry mends; the drain fails with that message at once
// instead of retrying until the timeout.
func TestDrainFailsOnAPodWithTwoBudgets(t *testing.T) {
	s := kubetest.Shared(t)
	c := testClient(t, s, nil)
	tn := newTestNode(t, s)
	s.PDB(t, tn.ns, "web", map[string]string{"app": "web"}, 1)
	s.PDB(t, tn.ns, "web-too", map[string]string{"app": "web"}, 1)
	s.SetPDBAllowed(t, tn.ns, "web", 2, 1, 1)
	s.SetPDBAllowed(t, tn.ns, "web-too", 2, 1, 1)
	node, err := c.Node(context.Background(), tn.name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Drain(context.Background(), node, DrainOptions{GracePeriod: 0, Timeout: 5 * time.Minute})
	t.Logf("error: %v", err)
	var derr *DrainError
	if !errors.As(err, &derr) || errors.Is(err, ErrDrainTimeout) {
		t.Fatalf("got %v, want a *DrainError that is not a timeout", err)
	}
	if !strings.Contains(err.Error(), "more than one PodDisruptionBudget") || !strings.Contains(err.Error(), tn.ns+"/web-a") {
		t.Errorf("error %q does not name the pod and the API's reason", err)
	}
	if !derr.Cordoned || !s.Unschedulable(t, tn.name) {
		t.Error("the node is not cordoned")
	}
}

// An evicted pod that terminates and is re-created under the same name (a StatefulSet's pod,
// on another node) is gone for the drain: it waits for the pod it evicted, by UID.
func TestDrainWaitsForTheEvictedPodNotItsSuccessor(t *testing.T) {
	s := kubetest.Shared(t)
	c := testClient(t, s, nil)
	ns := s.Namespace(t, "sts")
	name := kubetest.Unique("ip-10-0-3-1")
	s.Node(t, name, "", true)
	other := kubetest.Unique("ip-10-0-3-2")
	s.Node(t, other, "", true)
	rs := s.ReplicaSet(t, ns, "db", map[string]string{"app": "db"})
	old := s.Pod(t, ns, "db-0", name, kubetest.PodSpec{Labels: map[string]string{"app": "db"}, Owner: &rs})
	node, err := c.Node(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		res *DrainResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Grace 30s and no kubelet: the pod stays Terminating until the test finishes it.
		res, err := c.Drain(context.Background(), node, DrainOptions{GracePeriod: 30 * time.Second, Timeout: time.Minute})
		done <- result{res, err}
	}()
	pods := s.Client.CoreV1().Pods(ns)
	testwait.For(t, "db-0 to be terminating", 20*time.Second, func() bool {
		p, err := pods.Get(context.Background(), "db-0", metav1.GetOptions{})
		return err == nil && p.DeletionTimestamp != nil
	})
	zero := int64(0)
	if err := pods.Delete(context.Background(), "db-0", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	succ := s.Pod(t, ns, "db-0", other, kubetest.PodSpec{Labels: map[string]string{"app": "db"}, Owner: &rs})
	if succ.UID == old.UID {
		t.Fatal("the successor has the old pod's UID")
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if got := refs(r.res.Evicted); got != ns+"/db-0" {
			t.Errorf("evicted %q, want %s/db-0", got, ns)
		}
	case <-time.After(50 * time.Second):
		t.Fatal("the drain still waits for the successor of the evicted pod")
	}
	p, err := pods.Get(context.Background(), "db-0", metav1.GetOptions{})
	if err != nil || p.UID != succ.UID || p.DeletionTimestamp != nil {
		t.Errorf("the successor was touched: %v %v", p, err)
	}
}

// Mirror pods (the API's copies of a kubelet's static pods) are left alone, like DaemonSet
// pods; finished bare pods go without --force.
func TestDrainLeavesMirrorPodsAndTakesFinishedPods(t *testing.T) {
	s := kubetest.Shared(t)
	c := testClient(t, s, nil)
	ns := s.Namespace(t, "mirror")
	name := kubetest.Unique("ip-10-0-4-1")
	s.Node(t, name, "", true)
	ctx := context.Background()
	// As a kubelet creates it: the annotation can only be set at creation.
	if _, err := s.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: ns, Annotations: map[string]string{mirrorAnnotation: "abc"}},
		Spec:       corev1.PodSpec{NodeName: name, Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done := s.Pod(t, ns, "job-run", name, kubetest.PodSpec{})
	done.Status.Phase = "Succeeded"
	if _, err := s.Client.CoreV1().Pods(ns).UpdateStatus(ctx, done, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	plan, err := c.PlanDrain(ctx, name, DrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := refs(plan.Evict); got != ns+"/job-run" || len(plan.Refused) > 0 {
		t.Fatalf("plan evicts %q (refused %v), want only the finished pod", got, plan.Refused)
	}
	node, err := c.Node(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Drain(ctx, node, DrainOptions{GracePeriod: 0, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if !s.PodExists(t, ns, "kube-proxy") || s.PodExists(t, ns, "job-run") {
		t.Error("want the mirror pod left and the finished pod evicted")
	}
}
