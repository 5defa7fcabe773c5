package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kubectl/pkg/drain"
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
func (c *Client) Node(ctx context.Context, name string) (*corev1.Node, error) {
	n, err := c.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &NodeNotFoundError{Name: name}
	}
	if err != nil {
		return nil, fmt.Errorf("getting node %s: %w", name, err)
	}
	return n, nil
}

// NodeFor finds the node of an instance: the node whose spec.providerID names the instance, else
// the node named after its private DNS name. When the private DNS name is known, the node of that
// name is read first and taken if its providerID agrees (one request: EKS names nodes so);
// otherwise the nodes are listed in pages.
func (c *Client) NodeFor(ctx context.Context, ref InstanceRef) (*corev1.Node, error) {
	ctx = withLog(ctx, c.Log)
	var byName *corev1.Node
	if ref.PrivateDNSName != "" {
		n, err := c.Kube.CoreV1().Nodes().Get(ctx, ref.PrivateDNSName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("getting node %s of %s: %w", ref.PrivateDNSName, ref.ID, err)
		case ref.matches(n.Spec.ProviderID):
			return n, nil
		default:
			byName = n
		}
	}
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := c.Kube.CoreV1().Nodes().List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing nodes to find %s: %w", ref.ID, err)
		}
		for i := range list.Items {
			if ref.matches(list.Items[i].Spec.ProviderID) {
				return &list.Items[i], nil
			}
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
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
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Cordon marks the node unschedulable (no-op when it is already) and updates n.
func (c *Client) Cordon(ctx context.Context, n *corev1.Node) error {
	return c.setUnschedulable(ctx, n, true)
}

// Uncordon marks the node schedulable again (no-op when it is already) and updates n.
func (c *Client) Uncordon(ctx context.Context, n *corev1.Node) error {
	return c.setUnschedulable(ctx, n, false)
}

func (c *Client) setUnschedulable(ctx context.Context, n *corev1.Node, desired bool) error {
	h := drain.NewCordonHelper(n)
	if !h.UpdateIfRequired(desired) {
		return nil
	}
	verb := "cordoning"
	if !desired {
		verb = "uncordoning"
	}
	err, patchErr := h.PatchOrReplaceWithContext(ctx, c.Kube, false)
	if err != nil {
		if patchErr != nil {
			err = errors.Join(err, patchErr)
		}
		return fmt.Errorf("%s node %s: %w", verb, n.Name, err)
	}
	n.Spec.Unschedulable = desired
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
func (c *Client) WaitReady(ctx context.Context, ref InstanceRef, clk Clock, poll, timeout time.Duration) (*corev1.Node, bool, error) {
	if clk == nil {
		clk = realClock{}
	}
	if poll <= 0 {
		poll = 5 * time.Second
	}
	deadline := clk.Now().Add(timeout)
	var n *corev1.Node
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
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]*string{key: value}}})
	if err != nil {
		return err
	}
	if _, err := c.Kube.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("annotating node %s with %s: %w", node, key, err)
	}
	return nil
}
