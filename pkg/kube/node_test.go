package kube

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/spotmax/spotmax/pkg/kube/kubetest"
)

func TestNodeForFindsByProviderIDThenDNSName(t *testing.T) {
	s := kubetest.Shared(t)
	c := NewClient(s.Client, nil)
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
	cs := fake.NewClientset()
	for i := range 51 {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("other-%d", i)}}
		if i == 50 {
			n = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "ip-10-0-0-1.ec2.internal"},
				Spec: corev1.NodeSpec{ProviderID: "aws:///us-east-1a/i-0123"}}
		}
		if _, err := cs.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cs.ClearActions()
	n, err := NewClient(cs, nil).NodeFor(context.Background(), InstanceRef{ID: "i-0123", AZ: "us-east-1a", PrivateDNSName: "ip-10-0-0-1.ec2.internal"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != "ip-10-0-0-1.ec2.internal" {
		t.Errorf("got %s", n.Name)
	}
	if got := len(cs.Actions()); got != 1 {
		t.Errorf("%d API calls, want 1: %v", got, cs.Actions())
	}
}

func TestCordonAndUncordon(t *testing.T) {
	s := kubetest.Shared(t)
	c := NewClient(s.Client, nil)
	ctx := context.Background()
	n := s.Node(t, kubetest.Unique("cordon"), "", true)
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
	c := NewClient(s.Client, nil)
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
