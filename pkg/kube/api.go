package kube

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The objects below are the few fields of the Kubernetes API that spotmax reads and writes, in
// the API's JSON form. Fields the API sends and spotmax does not use are not decoded; objects
// spotmax changes are changed with patches or whole updates of objects it owns (Leases), so
// nothing unknown is lost.

// ObjectMeta is the metadata of an object (metav1.ObjectMeta, narrowed).
type ObjectMeta struct {
	Name            string            `json:"name,omitempty"`
	Namespace       string            `json:"namespace,omitempty"`
	UID             string            `json:"uid,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
	OwnerReferences []OwnerReference  `json:"ownerReferences,omitempty"`
	// DeletionTimestamp is set while the object terminates.
	DeletionTimestamp          *time.Time `json:"deletionTimestamp,omitempty"`
	DeletionGracePeriodSeconds *int64     `json:"deletionGracePeriodSeconds,omitempty"`
}

// OwnerReference names an object's owner; Controller marks the managing one.
type OwnerReference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
	Controller *bool  `json:"controller,omitempty"`
}

// ControllerOf returns the owner reference that manages the object, or nil.
func (m *ObjectMeta) ControllerOf() *OwnerReference {
	for i := range m.OwnerReferences {
		if c := m.OwnerReferences[i].Controller; c != nil && *c {
			return &m.OwnerReferences[i]
		}
	}
	return nil
}

// Node is a cluster node.
type Node struct {
	ObjectMeta `json:"metadata"`
	Spec       NodeSpec   `json:"spec"`
	Status     NodeStatus `json:"status"`
}

// NodeSpec is the part of a node's spec spotmax uses.
type NodeSpec struct {
	// ProviderID is aws:///<az>/<instance-id> on EC2.
	ProviderID    string  `json:"providerID,omitempty"`
	Unschedulable bool    `json:"unschedulable,omitempty"`
	Taints        []Taint `json:"taints,omitempty"`
}

// Taint is a node taint.
type Taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

// NodeStatus holds the node's conditions.
type NodeStatus struct {
	Conditions []Condition `json:"conditions,omitempty"`
}

// Condition is one condition of a node or pod: Type "Ready", Status "True", "False" or "Unknown".
type Condition struct {
	Type   string `json:"type"`
	Status string `json:"status"`
}

type nodeList struct {
	Metadata listMeta `json:"metadata"`
	Items    []Node   `json:"items"`
}

type listMeta struct {
	Continue        string `json:"continue,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// Pod is a pod, narrowed to what a drain decides on.
type Pod struct {
	ObjectMeta `json:"metadata"`
	Spec       PodSpec   `json:"spec"`
	Status     PodStatus `json:"status"`
}

// PodSpec is the part of a pod's spec a drain uses.
type PodSpec struct {
	NodeName                      string `json:"nodeName,omitempty"`
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`
}

// PodStatus holds the pod's phase: Pending, Running, Succeeded, Failed, Unknown.
type PodStatus struct {
	Phase string `json:"phase,omitempty"`
}

// Finished reports whether the pod's containers have all ended for good.
func (p *Pod) Finished() bool { return p.Status.Phase == "Succeeded" || p.Status.Phase == "Failed" }

type podList struct {
	Metadata listMeta `json:"metadata"`
	Items    []Pod    `json:"items"`
}

// Lease is a coordination.k8s.io/v1 Lease.
type Lease struct {
	ObjectMeta `json:"metadata"`
	Spec       LeaseSpec `json:"spec"`
}

// LeaseSpec is a Lease's spec.
type LeaseSpec struct {
	HolderIdentity       *string    `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds *int32     `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          *MicroTime `json:"acquireTime,omitempty"`
	RenewTime            *MicroTime `json:"renewTime,omitempty"`
	LeaseTransitions     *int32     `json:"leaseTransitions,omitempty"`
}

// MicroTime is a time the API writes with microseconds (metav1.MicroTime), as Leases need.
type MicroTime struct{ time.Time }

const microLayout = "2006-01-02T15:04:05.000000Z07:00"

// MarshalJSON writes the API's format, in UTC.
func (t MicroTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.UTC().Format(microLayout) + `"`), nil
}

// UnmarshalJSON reads the API's format (or any RFC 3339 time).
func (t *MicroTime) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		t.Time = time.Time{}
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("parsing time %q: %w", s, err)
	}
	t.Time = v
	return nil
}

// Status is the API's answer to a failed request (metav1.Status).
type Status struct {
	Message string         `json:"message,omitempty"`
	Reason  string         `json:"reason,omitempty"`
	Details *StatusDetails `json:"details,omitempty"`
	Code    int            `json:"code,omitempty"`
}

// StatusDetails name the object and the causes of a failure, e.g. the PodDisruptionBudget that
// refused an eviction ("DisruptionBudget").
type StatusDetails struct {
	Name              string        `json:"name,omitempty"`
	Kind              string        `json:"kind,omitempty"`
	Causes            []StatusCause `json:"causes,omitempty"`
	RetryAfterSeconds int32         `json:"retryAfterSeconds,omitempty"`
}

// StatusCause is one cause of a failure.
type StatusCause struct {
	Type    string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	Field   string `json:"field,omitempty"`
}

// APIError is a request the API server answered with an error status.
type APIError struct {
	// Method and Path say which request; Status is the server's answer (Code always set).
	Method, Path string
	Status       Status
	// RetryAfter is the Retry-After header, when the server sent one.
	RetryAfter time.Duration
}

// Error returns the server's message, as kubectl shows it.
func (e *APIError) Error() string {
	if e.Status.Message != "" {
		return e.Status.Message
	}
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status.Code, http.StatusText(e.Status.Code))
}

// Causes returns the messages of the failure's causes, without their final dots.
func (e *APIError) Causes() []string {
	if e.Status.Details == nil {
		return nil
	}
	var out []string
	for _, c := range e.Status.Details.Causes {
		if c.Message != "" {
			out = append(out, strings.TrimSuffix(c.Message, "."))
		}
	}
	return out
}

// HasCause reports whether the failure has a cause of type t (e.g. "NamespaceTerminating").
func (e *APIError) HasCause(t string) bool {
	if e.Status.Details == nil {
		return false
	}
	for _, c := range e.Status.Details.Causes {
		if c.Type == t {
			return true
		}
	}
	return false
}

func code(err error) int {
	var e *APIError
	if errors.As(err, &e) {
		return e.Status.Code
	}
	return 0
}

// IsNotFound reports whether the API answered 404.
func IsNotFound(err error) bool { return code(err) == http.StatusNotFound }

// IsConflict reports whether the API answered 409 (a stale resourceVersion, or the object exists).
func IsConflict(err error) bool { return code(err) == http.StatusConflict }

// IsAlreadyExists reports whether a create found the object there already.
func IsAlreadyExists(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status.Code == http.StatusConflict && e.Status.Reason == "AlreadyExists"
}

// IsTooManyRequests reports whether the API answered 429 (an eviction a PodDisruptionBudget
// refuses, or the server's own throttling).
func IsTooManyRequests(err error) bool { return code(err) == http.StatusTooManyRequests }

// IsForbidden reports whether the API answered 403.
func IsForbidden(err error) bool { return code(err) == http.StatusForbidden }

// IsUnauthorized reports whether the API answered 401.
func IsUnauthorized(err error) bool { return code(err) == http.StatusUnauthorized }
