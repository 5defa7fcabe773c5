package controller_test

import (
	"context"
	"sync"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/spotmax/spotmax/pkg/consul/consultest"
	"github.com/spotmax/spotmax/pkg/controller"
	"github.com/spotmax/spotmax/pkg/groupconfig"
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

	newElector := func() controller.Elector {
		cl, err := consul.NewClient(&consul.Config{Address: agent.Addr})
		if err != nil {
			t.Fatal(err)
		}
		return &controller.ConsulLock{Client: cl, Key: "spotmax/leader/test", SessionTTL: 10 * time.Second, RetryWait: 100 * time.Millisecond}
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
