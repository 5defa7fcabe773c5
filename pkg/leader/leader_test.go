package leader_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/spotmax/spotmax/pkg/consul/consultest"
	"github.com/spotmax/spotmax/pkg/internal/testwait"
	"github.com/spotmax/spotmax/pkg/leader"
)

// TestConsulLockOneLeader runs two ConsulLock electors on one key against a real Consul agent:
// only one leads at a time, and the other leads once the first stops.
func TestConsulLockOneLeader(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	newLock := func() *leader.ConsulLock {
		cl, err := consul.NewClient(&consul.Config{Address: agent.Addr})
		if err != nil {
			t.Fatal(err)
		}
		return &leader.ConsulLock{Client: cl, Key: "spotmax/leader/unit", SessionTTL: 10 * time.Second, RetryWait: 100 * time.Millisecond}
	}
	var active atomic.Int32
	var overlap, aLed, bLed atomic.Bool
	lead := func(led *atomic.Bool) func(context.Context) {
		return func(ctx context.Context) {
			if active.Add(1) > 1 {
				overlap.Store(true)
			}
			led.Store(true)
			<-ctx.Done()
			active.Add(-1)
		}
	}
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	go func() { doneA <- newLock().Run(ctxA, lead(&aLed)) }()
	testwait.For(t, "a to lead", 20*time.Second, aLed.Load)
	go func() { doneB <- newLock().Run(ctxB, lead(&bLed)) }()
	time.Sleep(time.Second) // b campaigns meanwhile
	if bLed.Load() {
		t.Fatal("b leads while a holds the lock")
	}
	stopA()
	if err := <-doneA; err != nil {
		t.Errorf("a's Run: %v", err)
	}
	testwait.For(t, "b to lead after a stopped", 20*time.Second, bLed.Load)
	stopB()
	if err := <-doneB; err != nil {
		t.Errorf("b's Run: %v", err)
	}
	if overlap.Load() {
		t.Error("two electors led at once")
	}
}
