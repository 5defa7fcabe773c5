package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// Unit test of the failure path with the fake clientset (runs without the built API server): a
// budget refuses every eviction until the timeout; the error names the pod and the budget.
func TestDrainTimeoutWithFakeClientset(t *testing.T) {
	yes := true
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-a", Namespace: "shop",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "u", Controller: &yes}}},
		Spec: corev1.PodSpec{NodeName: "n1"}}
	cs := fake.NewClientset(node, pod)
	cs.Resources = []*metav1.APIResourceList{{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "pods/eviction", Kind: "Eviction", Group: "policy", Version: "v1"}}}}
	var evictions, dryRuns int
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		if ev.DeleteOptions != nil && len(ev.DeleteOptions.DryRun) > 0 {
			dryRuns++
		} else {
			evictions++
		}
		err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: policyv1.DisruptionBudgetCause, Message: "The disruption budget web needs 1 healthy pods and has 1 currently"}}
		return true, nil, err
	})
	c := NewClient(cs, nil)
	_, err := c.Drain(context.Background(), node, DrainOptions{GracePeriod: 0, Timeout: 200 * time.Millisecond, EvictRetry: 20 * time.Millisecond})
	var derr *DrainError
	if !errors.As(err, &derr) || !errors.Is(err, ErrDrainTimeout) {
		t.Fatalf("got %v, want a drain timeout", err)
	}
	want := "shop/web-a (The disruption budget web needs 1 healthy pods and has 1 currently)"
	if !strings.Contains(err.Error(), want) || !derr.Cordoned {
		t.Errorf("error %q does not contain %q or the node is not reported cordoned", err, want)
	}
	if evictions < 2 || dryRuns != 1 {
		t.Errorf("%d evictions (want retries) and %d dry runs (want 1 to explain)", evictions, dryRuns)
	}
	n, _ := cs.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	if !n.Spec.Unschedulable {
		t.Error("node not cordoned")
	}
}
