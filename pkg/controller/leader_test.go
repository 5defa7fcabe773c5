package controller_test

import (
	"context"
	"sync"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spotmax/spotmax/pkg/consul/consultest"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/internal/testwait"
	"github.com/spotmax/spotmax/pkg/kube"
	"github.com/spotmax/spotmax/pkg/kube/kubetest"
	"github.com/spotmax/spotmax/pkg/leader"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// TestTwoControllersOneLeader runs two controllers against one region with a real Consul agent
// as the coordination service: only the leader reconciles and replaces; when it stops, the other
// takes over.
func TestTwoControllersOneLeader(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	e := newEnv(t, 1000)
	e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 2, Max: 2,
		Tags: tags("web", map[string]string{groupconfig.TagGuaranteeLivingMins: "20", groupconfig.TagBufferMins: "1"})})

	newElector := func() leader.Elector {
		cl, err := consul.NewClient(&consul.Config{Address: agent.Addr})
		if err != nil {
			t.Fatal(err)
		}
		return &leader.ConsulLock{Client: cl, Key: "spotmax/leader/test", SessionTTL: 10 * time.Second, RetryWait: 100 * time.Millisecond}
	}
	a, b := e.controller(&recorder{}), e.controller(&recorder{})
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = a.RunElected(ctxA, newElector()) }()
	time.Sleep(300 * time.Millisecond) // a campaigns first
	go func() { defer wg.Done(); _ = b.RunElected(ctxB, newElector()) }()

	deadline := time.Now().Add(20 * time.Second)
	for a.Stats().Succeeded < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("leader did not replace: a %+v b %+v", a.Stats(), b.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := b.Stats(); st.Reconciles != 0 || st.Replacements != 0 {
		t.Errorf("the follower acted while the leader held the lock: %+v", st)
	}
	stopA()
	for b.Stats().Reconciles == 0 {
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("follower did not take over: %+v", b.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopB()
	wg.Wait()
	js, err := a.Workflow.InFlight(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range js {
		t.Logf("journal left for the next leader: %+v", j)
	}
}

// TestKubeLeaseTwoControllersOneLeader runs two controllers on one region that elect their leader
// with one Kubernetes Lease on a real kube-apiserver: only the leader reconciles and replaces;
// when it stops, the other takes over.
func TestKubeLeaseTwoControllersOneLeader(t *testing.T) {
	srv := kubetest.Start(t)
	e := newEnv(t, 1000)
	e.CreateGroup(t, simtest.GroupSpec{Name: "web", Spot: true, DataDevice: "/dev/sdf", Desired: 2, Max: 2,
		Tags: tags("web", map[string]string{groupconfig.TagGuaranteeLivingMins: "20", groupconfig.TagBufferMins: "1"})})
	name := kubetest.Unique("spotmax-test")

	a, b := e.controller(&recorder{}), e.controller(&recorder{})
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		stopA()
		stopB()
		wg.Wait()
	}()
	wg.Add(2)
	go func() { defer wg.Done(); _ = a.RunElected(ctxA, newLease(t, srv, name, "a")) }()
	testwait.For(t, "a to hold the Lease", 20*time.Second, func() bool { return a.Stats().Reconciles > 0 })
	go func() { defer wg.Done(); _ = b.RunElected(ctxB, newLease(t, srv, name, "b")) }()

	testwait.For(t, "the leader to replace both instances", 20*time.Second, func() bool { return a.Stats().Succeeded >= 2 })
	if st := b.Stats(); st.Reconciles != 0 || st.Replacements != 0 {
		t.Errorf("the follower acted while the leader held the Lease: %+v", st)
	}
	if got := kubetest.LeaseHolder(t, srv.Client, metav1.NamespaceDefault, name); got != "a" {
		t.Errorf("Lease holder while a leads = %q, want a", got)
	}
	stopA()
	stoppedAt := time.Now()
	testwait.For(t, "b to take over", 20*time.Second, func() bool { return b.Stats().Reconciles > 0 })
	t.Logf("b took over %s after a was told to stop (lease duration 2s)", time.Since(stoppedAt).Round(time.Millisecond))
	if got := kubetest.LeaseHolder(t, srv.Client, metav1.NamespaceDefault, name); got != "b" {
		t.Errorf("Lease holder after takeover = %q, want b", got)
	}
	aStats := a.Stats()
	time.Sleep(200 * time.Millisecond)
	if st := a.Stats(); st.Reconciles != aStats.Reconciles {
		t.Errorf("a kept reconciling after it stopped: %+v then %+v", aStats, st)
	}
}

// newLease returns an elector on the Lease default/name with test durations.
func newLease(t *testing.T, srv *kubetest.Server, name, identity string) *leader.KubeLease {
	t.Helper()
	c, err := kube.Connect(context.Background(), kube.Source{Path: srv.Kubeconfig, From: "test"}, kube.ConnectOptions{RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &leader.KubeLease{Client: c, Namespace: metav1.NamespaceDefault, Name: name, Identity: identity,
		LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond}
}
