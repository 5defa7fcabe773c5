package kube

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/kube/kubetest"
)

func TestNodeForFindsByProviderIDThenDNSName(t *testing.T) {
	s := kubetest.Shared(t)
	c := testClient(t, s, nil)
	ctx := context.Background()
	byPID := kubetest.Unique("i-0a")
	s.Node(t, kubetest.Unique("karpenter-node"), ProviderID("us-east-1a", byPID), true)
	dnsOnly := kubetest.Unique("i-0b")
	dnsName := kubetest.Unique("ip-10-0-0-7") + ".ec2.internal"
	s.Node(t, dnsName, "", true)
	// A stale node that has the instance's DNS name but belongs to another instance.
	staleID, staleName := kubetest.Unique("i-0c"), kubetest.Unique("ip-10-0-0-8")+".ec2.internal"
	s.Node(t, staleName, ProviderID("us-east-1a", kubetest.Unique("i-0old")), true)

	tests := []struct {
		name     string
		ref      InstanceRef
		wantNode string
		wantErr  string
	}{
		{"providerID with AZ", InstanceRef{ID: byPID, AZ: "us-east-1a"}, "", ""},
		{"providerID without AZ", InstanceRef{ID: byPID}, "", ""},
		{"providerID in another AZ", InstanceRef{ID: byPID, AZ: "us-east-1b"}, "",
			"no node for " + byPID + " (looked for providerID aws:///us-east-1b/" + byPID + "; no private DNS name to fall back to)"},
		{"DNS name fallback", InstanceRef{ID: dnsOnly, AZ: "us-east-1a", PrivateDNSName: dnsName}, dnsName, ""},
		{"DNS name of another instance", InstanceRef{ID: staleID, AZ: "us-east-1a", PrivateDNSName: staleName}, "",
			"no node for " + staleID + " (looked for providerID aws:///us-east-1a/" + staleID + " and node name " + staleName + ")"},
		{"nothing", InstanceRef{ID: "i-0nothing", AZ: "us-east-1c", PrivateDNSName: "ip-10-9-9-9.ec2.internal"}, "",
			"no node for i-0nothing (looked for providerID aws:///us-east-1c/i-0nothing and node name ip-10-9-9-9.ec2.internal)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := c.NodeFor(ctx, tt.ref)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrNodeNotFound) {
					t.Fatalf("got node %v, err %v; want error %q", n, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantNode != "" && n.Name != tt.wantNode {
				t.Errorf("got node %s, want %s", n.Name, tt.wantNode)
			}
			if tt.wantNode == "" && n.Spec.ProviderID != ProviderID("us-east-1a", tt.ref.ID) {
				t.Errorf("got node %s with providerID %q", n.Name, n.Spec.ProviderID)
			}
		})
	}
	if _, err := c.Node(ctx, "no-such-node"); err == nil || err.Error() != "no node named no-such-node" {
		t.Errorf("Node: got %v", err)
	}
}

// EKS names nodes after the private DNS name: one GET finds them, however large the cluster.
func TestNodeForReadsOneNodeWhenTheNameMatches(t *testing.T) {
	s := kubetest.Shared(t)
	for range 5 {
		s.Node(t, kubetest.Unique("other"), ProviderID("us-east-1a", kubetest.Unique("i-0other")), true)
	}
	id, name := kubetest.Unique("i-0123"), kubetest.Unique("ip-10-0-0-1")+".ec2.internal"
	s.Node(t, name, ProviderID("us-east-1a", id), true)
	var requests atomic.Int64
	c := connectTest(t, s, ConnectOptions{WrapTransport: counting(&requests)})
	requests.Store(0)
	n, err := c.NodeFor(context.Background(), InstanceRef{ID: id, AZ: "us-east-1a", PrivateDNSName: name})
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != name {
		t.Errorf("got %s", n.Name)
	}
	if got := requests.Load(); got != 1 {
		t.Errorf("%d API requests, want 1", got)
	}
}

func TestCordonAndUncordon(t *testing.T) {
	s := kubetest.Shared(t)
	c := testClient(t, s, nil)
	ctx := context.Background()
	name := kubetest.Unique("cordon")
	s.Node(t, name, "", true)
	n, err := c.Node(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Cordon(ctx, n); err != nil {
		t.Fatal(err)
	}
	if !s.Unschedulable(t, n.Name) || !n.Spec.Unschedulable {
		t.Fatal("node is not cordoned")
	}
	if err := c.Cordon(ctx, n); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := c.Uncordon(ctx, n); err != nil {
		t.Fatal(err)
	}
	if s.Unschedulable(t, n.Name) {
		t.Fatal("node is still cordoned")
	}
}

func TestWaitReady(t *testing.T) {
	s := kubetest.Shared(t)
	c := testClient(t, s, nil)
	ctx := context.Background()
	id := kubetest.Unique("i-0wait")

	// Nothing registers: the wait ends at the timeout without error.
	n, ready, err := c.WaitReady(ctx, InstanceRef{ID: id}, nil, 10*time.Millisecond, 100*time.Millisecond)
	if err != nil || ready || n != nil {
		t.Fatalf("got %v, %v, %v; want no node, not ready, no error", n, ready, err)
	}

	// The node registers NotReady, then becomes Ready.
	name := kubetest.Unique("ip-10-1-1-1")
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, ready, err = c.WaitReady(ctx, InstanceRef{ID: id}, nil, 10*time.Millisecond, time.Minute)
	}()
	s.Node(t, name, ProviderID("us-east-1b", id), false)
	time.Sleep(50 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("WaitReady returned for a NotReady node")
	default:
	}
	s.SetNodeReady(t, name, true)
	<-done
	if err != nil || !ready || n == nil || n.Name != name {
		t.Fatalf("got %v, %v, %v; want node %s ready", n, ready, err, name)
	}
}
