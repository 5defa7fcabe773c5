package kube

import (
	"context"
	"net/http"
	"net/url"
)

func leasePath(ns, name string) string {
	p := "/apis/coordination.k8s.io/v1/namespaces/" + url.PathEscape(ns) + "/leases"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// Lease reads the coordination.k8s.io/v1 Lease ns/name; IsNotFound(err) when there is none.
func (c *Client) Lease(ctx context.Context, ns, name string) (*Lease, error) {
	var l Lease
	if err := c.t.do(ctx, http.MethodGet, leasePath(ns, name), nil, nil, "", &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// CreateLease creates l (its Namespace and Name set); IsAlreadyExists(err) when another
// candidate created it first.
func (c *Client) CreateLease(ctx context.Context, l *Lease) (*Lease, error) {
	body := map[string]any{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": l.ObjectMeta, "spec": l.Spec}
	var out Lease
	if err := c.t.do(ctx, http.MethodPost, leasePath(l.Namespace, ""), nil, body, jsonBody, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateLease replaces l; l.ResourceVersion makes the write conditional: IsConflict(err) when
// someone wrote the Lease since l was read.
func (c *Client) UpdateLease(ctx context.Context, l *Lease) (*Lease, error) {
	body := map[string]any{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": l.ObjectMeta, "spec": l.Spec}
	var out Lease
	if err := c.t.do(ctx, http.MethodPut, leasePath(l.Namespace, l.Name), nil, body, jsonBody, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
