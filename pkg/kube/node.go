package kube

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// InstanceRef identifies the EC2 instance behind a node.
type InstanceRef struct {
	ID string
	// AZ makes the providerID exact; without it any aws://…/ID matches.
	AZ string
	// PrivateDNSName is the fallback: EKS names nodes after it.
	PrivateDNSName string
}

// ProviderID returns the spec.providerID the AWS cloud provider gives the node of an instance:
// aws:///<az>/<instance-id>.
func ProviderID(az, id string) string { return "aws:///" + az + "/" + id }

// ErrNodeNotFound is matched by a *NodeNotFoundError.
var ErrNodeNotFound = errors.New("node not found")

// NodeNotFoundError says which node was looked for.
type NodeNotFoundError struct {
	// Instance and the lookups tried for it; or Name for a lookup by node name.
	Instance, ProviderID, DNSName string
	Name                          string
}

// Error implements error.
func (e *NodeNotFoundError) Error() string {
	if e.Instance == "" {
		return fmt.Sprintf("no node named %s", e.Name)
	}
	if e.DNSName == "" {
		return fmt.Sprintf("no node for %s (looked for providerID %s; no private DNS name to fall back to)", e.Instance, e.ProviderID)
	}
	return fmt.Sprintf("no node for %s (looked for providerID %s and node name %s)", e.Instance, e.ProviderID, e.DNSName)
}

// Is makes errors.Is(err, ErrNodeNotFound) true.
func (e *NodeNotFoundError) Is(target error) bool { return target == ErrNodeNotFound }

// Node returns the node named name.
func (c *Client) Node(ctx context.Context, name string) (*Node, error) {
	n, err := c.getNode(ctx, name)
	if IsNotFound(err) {
		return nil, &NodeNotFoundError{Name: name}
	}
	if err != nil {
		return nil, fmt.Errorf("getting node %s: %w", name, err)
	}
	return n, nil
}

func (c *Client) getNode(ctx context.Context, name string) (*Node, error) {
	var n Node
	if err := c.t.do(ctx, http.MethodGet, "/api/v1/nodes/"+url.PathEscape(name), nil, nil, "", &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// NodeFor finds the node of an instance: the node whose spec.providerID names the instance, else
// the node named after its private DNS name. When the private DNS name is known, the node of that
// name is read first and taken if its providerID agrees (one request: EKS names nodes so);
// otherwise the nodes are listed in pages.
func (c *Client) NodeFor(ctx context.Context, ref InstanceRef) (*Node, error) {
	var byName *Node
	if ref.PrivateDNSName != "" {
		n, err := c.getNode(ctx, ref.PrivateDNSName)
		switch {
		case IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("getting node %s of %s: %w", ref.PrivateDNSName, ref.ID, err)
		case ref.matches(n.Spec.ProviderID):
			return n, nil
		default:
			byName = n
		}
	}
	q := url.Values{"limit": {"500"}}
	for {
		var list nodeList
		if err := c.t.do(ctx, http.MethodGet, "/api/v1/nodes", q, nil, "", &list); err != nil {
			return nil, fmt.Errorf("listing nodes to find %s: %w", ref.ID, err)
		}
		for i := range list.Items {
			if ref.matches(list.Items[i].Spec.ProviderID) {
				return &list.Items[i], nil
			}
		}
		if list.Metadata.Continue == "" {
			break
		}
		q.Set("continue", list.Metadata.Continue)
	}
	// A node named after the instance's DNS name but registered without a providerID (or with
	// another cloud's) is the instance's node; one that names another instance is not.
	if byName != nil && !strings.HasPrefix(byName.Spec.ProviderID, "aws://") {
		return byName, nil
	}
	return nil, ref.notFound()
}

func (ref InstanceRef) matches(providerID string) bool {
	if ref.AZ != "" {
		return providerID == ProviderID(ref.AZ, ref.ID)
	}
	return strings.HasPrefix(providerID, "aws://") && strings.HasSuffix(providerID, "/"+ref.ID)
}

func (ref InstanceRef) notFound() *NodeNotFoundError {
	az := ref.AZ
	if az == "" {
		az = "*"
	}
	return &NodeNotFoundError{Instance: ref.ID, ProviderID: ProviderID(az, ref.ID), DNSName: ref.PrivateDNSName}
}

// NodeReady reports whether the node's Ready condition is True.
func NodeReady(n *Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// Cordon marks the node unschedulable (no-op when it is already) and updates n.
func (c *Client) Cordon(ctx context.Context, n *Node) error {
	return c.setUnschedulable(ctx, n, true)
}

// Uncordon marks the node schedulable again (no-op when it is already) and updates n.
func (c *Client) Uncordon(ctx context.Context, n *Node) error {
	return c.setUnschedulable(ctx, n, false)
}

// setUnschedulable patches spec.unschedulable with a JSON merge patch: only that field
// changes, whoever else writes the node meanwhile (kubectl's cordon does the same with a
// strategic merge patch). Uncordoning removes the field, as kubectl leaves it.
func (c *Client) setUnschedulable(ctx context.Context, n *Node, desired bool) error {
	if n.Spec.Unschedulable == desired {
		return nil
	}
	verb := "cordoning"
	var value any = true
	if !desired {
		verb, value = "uncordoning", nil
	}
	var out Node
	patch := map[string]any{"spec": map[string]any{"unschedulable": value}}
	if err := c.t.do(ctx, http.MethodPatch, "/api/v1/nodes/"+url.PathEscape(n.Name), nil, patch, mergePatch, &out); err != nil {
		return fmt.Errorf("%s node %s: %w", verb, n.Name, err)
	}
	*n = out
	c.Log.Info(verb+" node", "node", n.Name)
	return nil
}

// Clock is the time WaitReady waits in: the replacement workflow's (replace.Clock satisfies it),
// which runs scaled against the simulated region.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// WaitReady waits until the node of ref exists and is Ready, polling every poll of clk's time,
// for at most timeout of clk's time. It returns the node (nil when none was found) and whether it
// became Ready; running out of time is not an error.
func (c *Client) WaitReady(ctx context.Context, ref InstanceRef, clk Clock, poll, timeout time.Duration) (*Node, bool, error) {
	if clk == nil {
		clk = realClock{}
	}
	if poll <= 0 {
		poll = 5 * time.Second
	}
	deadline := clk.Now().Add(timeout)
	var n *Node
	for {
		var err error
		if n == nil {
			n, err = c.NodeFor(ctx, ref)
		} else {
			// Found before: one GET by name per poll from now on.
			n, err = c.Node(ctx, n.Name)
		}
		switch {
		case err == nil && NodeReady(n):
			return n, true, nil
		case err != nil && !errors.Is(err, ErrNodeNotFound):
			return nil, false, err
		}
		left := deadline.Sub(clk.Now())
		if left <= 0 {
			return n, false, nil
		}
		if err := clk.Sleep(ctx, min(poll, left)); err != nil {
			return n, false, err
		}
	}
}

// Annotate sets (value non-nil) or removes (nil) an annotation of a node.
func (c *Client) Annotate(ctx context.Context, node, key string, value *string) error {
	patch := map[string]any{"metadata": map[string]any{"annotations": map[string]*string{key: value}}}
	if err := c.t.do(ctx, http.MethodPatch, "/api/v1/nodes/"+url.PathEscape(node), nil, patch, mergePatch, nil); err != nil {
		return fmt.Errorf("annotating node %s with %s: %w", node, key, err)
	}
	return nil
}
