package leader_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/spotmax/spotmax/pkg/internal/testwait"
	"github.com/spotmax/spotmax/pkg/kube"
	"github.com/spotmax/spotmax/pkg/kube/kubetest"
	"github.com/spotmax/spotmax/pkg/leader"
)

// client connects to srv as its admin; wrap, when set, wraps the HTTP transport.
func client(t *testing.T, srv *kubetest.Server, wrap func(http.RoundTripper) http.RoundTripper) *kube.Client {
	t.Helper()
	c, err := kube.Connect(context.Background(), kube.Source{Path: srv.Kubeconfig, From: "test"},
		kube.ConnectOptions{RequestTimeout: 5 * time.Second, WrapTransport: wrap})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newLease returns an elector on the Lease default/name with test durations.
func newLease(c *kube.Client, name, identity string) *leader.KubeLease {
	return &leader.KubeLease{Client: c, Namespace: metav1.NamespaceDefault, Name: name, Identity: identity,
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
			doneA <- newLease(client(t, srv, nil), name, "a").Run(ctxA, func(ctx context.Context) {
				aLeading.Store(true)
				<-ctx.Done()
				<-finishA // the step in flight
				aLeading.Store(false)
			})
		}()
		testwait.For(t, "a to lead", 20*time.Second, aLeading.Load)
		go func() {
			doneB <- newLease(client(t, srv, nil), name, "b").Run(ctxB, func(ctx context.Context) {
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
			done <- newLease(client(t, srv, nil), name, "a").Run(ctx, func(ctx context.Context) {
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

	// A write of the Lease that races another writer is refused with 409 (the resourceVersion
	// it carries is stale): the candidate reads the Lease again and decides on what it finds,
	// never overwriting another holder.
	t.Run("ConflictReadsAgain", func(t *testing.T) {
		for _, tc := range []struct {
			name       string
			interloper string // the holder the interloper writes; "" = it only adds an annotation
			wantLead   bool
		}{
			{"AnnotationChanged", "", true},
			{"TakenByAnother", "b", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				name := kubetest.Unique("spotmax-test")
				leases := srv.Client.CoordinationV1().Leases(metav1.NamespaceDefault)
				// Released by its last holder, three terms so far.
				empty, one, three, now := "", int32(1), int32(3), metav1.NewMicroTime(time.Now().Add(-time.Minute))
				if _, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
					Spec: coordinationv1.LeaseSpec{HolderIdentity: &empty, LeaseDurationSeconds: &one, RenewTime: &now, LeaseTransitions: &three}},
					metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				interlope := func() {
					l, err := leases.Get(ctx, name, metav1.GetOptions{})
					if err != nil {
						t.Error(err)
						return
					}
					if tc.interloper == "" {
						l.Annotations = map[string]string{"example.com/touched": "yes"}
					} else {
						secs, renew := int32(15), metav1.NewMicroTime(time.Now())
						l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &tc.interloper, &secs, &renew
					}
					if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
						t.Error(err)
					}
				}
				var conflicts atomic.Int32
				var first sync.Once
				wrap := func(rt http.RoundTripper) http.RoundTripper {
					return roundTripFunc(func(r *http.Request) (*http.Response, error) {
						if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/leases/"+name) {
							// Between a's read and a's write.
							first.Do(interlope)
						}
						resp, err := rt.RoundTrip(r)
						if resp != nil && resp.StatusCode == http.StatusConflict {
							conflicts.Add(1)
						}
						return resp, err
					})
				}
				var led atomic.Bool
				runCtx, stop := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() {
					done <- newLease(client(t, srv, wrap), name, "a").Run(runCtx, func(ctx context.Context) {
						led.Store(true)
						<-ctx.Done()
					})
				}()
				if tc.wantLead {
					testwait.For(t, "a to lead", 20*time.Second, led.Load)
					l, err := leases.Get(ctx, name, metav1.GetOptions{})
					if err != nil {
						t.Fatal(err)
					}
					if *l.Spec.HolderIdentity != "a" || *l.Spec.LeaseTransitions != 4 || l.Annotations["example.com/touched"] != "yes" {
						t.Errorf("Lease holder %q, transitions %d, annotations %v; want a, 4 and the interloper's annotation kept",
							*l.Spec.HolderIdentity, *l.Spec.LeaseTransitions, l.Annotations)
					}
				} else {
					time.Sleep(time.Second) // five campaign rounds
					if led.Load() {
						t.Error("a leads although b took the Lease")
					}
				}
				stop()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
				if conflicts.Load() == 0 {
					t.Error("a's write was not refused with 409: the test did not race")
				}
				if !tc.wantLead {
					if got := kubetest.LeaseHolder(t, srv.Client, metav1.NamespaceDefault, name); got != "b" {
						t.Errorf("Lease holder = %q, want b (a must not overwrite it)", got)
					}
				}
			})
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestKubeLeaseConfigErrors checks that a misconfigured elector says what is wrong before it
// contacts the API server.
func TestKubeLeaseConfigErrors(t *testing.T) {
	// Never contacted: the configuration is refused first.
	cs := kube.NewClient(&kube.Config{Host: "https://127.0.0.1:1"}, nil)
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
