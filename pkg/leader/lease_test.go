package leader_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/util/retry"

	"github.com/spotmax/spotmax/pkg/internal/testwait"
	"github.com/spotmax/spotmax/pkg/kube/kubetest"
	"github.com/spotmax/spotmax/pkg/leader"
)

// newLease returns an elector on the Lease default/name with test durations.
func newLease(cs kubernetes.Interface, name, identity string) *leader.KubeLease {
	return &leader.KubeLease{Client: cs, Namespace: metav1.NamespaceDefault, Name: name, Identity: identity,
		LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond}
}

// TestKubeLease runs KubeLease electors against a real kube-apiserver (one for the subtests).
func TestKubeLease(t *testing.T) {
	srv := kubetest.Start(t)

	// On shutdown the leader keeps the Lease while lead finishes its step in flight, and
	// releases it afterwards; the follower never leads before that.
	t.Run("ReleasedOnlyAfterLeadReturns", func(t *testing.T) {
		name := kubetest.Unique("spotmax-test")
		var aLeading, bLeading atomic.Bool
		finishA := make(chan struct{})
		ctxA, stopA := context.WithCancel(context.Background())
		ctxB, stopB := context.WithCancel(context.Background())
		defer stopB()
		doneA, doneB := make(chan error, 1), make(chan error, 1)
		go func() {
			doneA <- newLease(srv.Client, name, "a").Run(ctxA, func(ctx context.Context) {
				aLeading.Store(true)
				<-ctx.Done()
				<-finishA // the step in flight
				aLeading.Store(false)
			})
		}()
		testwait.For(t, "a to lead", 20*time.Second, aLeading.Load)
		go func() {
			doneB <- newLease(srv.Client, name, "b").Run(ctxB, func(ctx context.Context) {
				bLeading.Store(true)
				<-ctx.Done()
			})
		}()
		stopA()
		// Longer than LeaseDuration: without renewals b would have taken the Lease by now.
		time.Sleep(3 * time.Second)
		if bLeading.Load() {
			t.Errorf("b leads while a is still finishing its work")
		}
		if got := kubetest.LeaseHolder(t, srv.Client, metav1.NamespaceDefault, name); got != "a" {
			t.Errorf("Lease holder while a finishes = %q, want a", got)
		}
		close(finishA)
		select {
		case err := <-doneA:
			if err != nil {
				t.Errorf("a's Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a's Run did not return after its lead did")
		}
		testwait.For(t, "b to lead", 20*time.Second, bLeading.Load)
		stopB()
		select {
		case err := <-doneB:
			if err != nil {
				t.Errorf("b's Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("b's Run did not return")
		}
		if got := kubetest.LeaseHolder(t, srv.Client, metav1.NamespaceDefault, name); got != "" {
			t.Errorf("Lease holder after b stopped = %q, want it released", got)
		}
	})

	// A leader whose Lease is taken stops leading, and campaigns again until it leads once
	// more; lead never runs twice at once.
	t.Run("CampaignsAgainAfterLosingLease", func(t *testing.T) {
		name := kubetest.Unique("spotmax-test")
		var terms, active atomic.Int32
		var overlap atomic.Bool
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- newLease(srv.Client, name, "a").Run(ctx, func(ctx context.Context) {
				if active.Add(1) > 1 {
					overlap.Store(true)
				}
				terms.Add(1)
				<-ctx.Done()
				active.Add(-1)
			})
		}()
		defer func() {
			stop()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Error("Run did not return")
			}
		}()
		testwait.For(t, "a to lead", 20*time.Second, func() bool { return terms.Load() == 1 })

		// Another holder takes the Lease, as an operator or a partition might cause.
		// a renews meanwhile, so the intruder's write may conflict: it reads and writes again,
		// as any client of a Lease must.
		leases := srv.Client.CoordinationV1().Leases(metav1.NamespaceDefault)
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			l, err := leases.Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			intruder, secs, now := "intruder", int32(2), metav1.NewMicroTime(time.Now())
			l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &intruder, &secs, &now
			_, err = leases.Update(context.Background(), l, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatalf("taking the Lease: %v", err)
		}
		testwait.For(t, "a to stop leading", 20*time.Second, func() bool { return active.Load() == 0 })
		// The intruder never renews: a takes the Lease back once it expires.
		testwait.For(t, "a to lead again", 20*time.Second, func() bool { return terms.Load() == 2 && active.Load() == 1 })
		if got := kubetest.LeaseHolder(t, srv.Client, metav1.NamespaceDefault, name); got != "a" {
			t.Errorf("Lease holder after a campaigned again = %q, want a", got)
		}
		if overlap.Load() {
			t.Error("lead ran twice at once")
		}
	})
}

// TestKubeLeaseConfigErrors checks that a misconfigured elector says what is wrong before it
// contacts the API server.
func TestKubeLeaseConfigErrors(t *testing.T) {
	cs := fake.NewClientset()
	for _, tc := range []struct {
		name string
		l    leader.KubeLease
		want string
	}{
		{"no client", leader.KubeLease{Namespace: "default", Name: "spotmax-x"}, "no Kubernetes client"},
		{"no name", leader.KubeLease{Client: cs, Namespace: "default"}, `name ""`},
		{"renew deadline not below lease duration", leader.KubeLease{Client: cs, Namespace: "ops", Name: "spotmax-x",
			LeaseDuration: 5 * time.Second, RenewDeadline: 5 * time.Second}, "Lease ops/spotmax-x (lease duration 5s, renew deadline 5s"},
		{"retry period too long", leader.KubeLease{Client: cs, Namespace: "ops", Name: "spotmax-x",
			RetryPeriod: 9 * time.Second}, "retry period 9s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			err := tc.l.Run(context.Background(), func(context.Context) { called = true })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run error = %v, want it to contain %q", err, tc.want)
			}
			if called {
				t.Error("lead was called")
			}
		})
	}
}
