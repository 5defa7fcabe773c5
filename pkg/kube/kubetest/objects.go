package kubetest

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

var seq atomic.Int64

// Unique returns prefix with a suffix unique in the test binary, for names of objects in a
// shared server.
func Unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%100000, seq.Add(1))
}

// Namespace creates a namespace with a unique name. Namespaces are not deleted: without a
// namespace controller they would stay Terminating, and the server goes with the test binary.
func (s *Server) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	name := Unique(prefix)
	_, err := s.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return name
}

// Node registers a node as a kubelet would: name, providerID (aws:///az/i-… or ""), and a Ready
// condition. The node is deleted when the test ends, so that later tests of a shared server can
// reuse the name.
func (s *Server) Node(t testing.TB, name, providerID string, ready bool) *corev1.Node {
	t.Helper()
	n, err := CreateNode(context.Background(), s.Client, name, providerID, ready)
	if err != nil {
		t.Fatal(err)
	}
	s.DeleteNodeAtCleanup(t, name)
	return n
}

// DeleteNodeAtCleanup deletes the node and the pods bound to it when the test ends (no pod
// garbage collector runs).
func (s *Server) DeleteNodeAtCleanup(t testing.TB, name string) {
	t.Cleanup(func() {
		ctx := context.Background()
		zero := int64(0)
		pods, err := s.Client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", name).String()})
		if err == nil {
			for _, p := range pods.Items {
				_ = s.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
			}
		}
		_ = s.Client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	})
}

// CreateNode is Node without a testing.TB, for goroutines and benchmarks; nothing deletes the
// node.
func CreateNode(ctx context.Context, cs kubernetes.Interface, name, providerID string, ready bool) (*corev1.Node, error) {
	_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Spec:       corev1.NodeSpec{ProviderID: providerID},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating node %s: %w", name, err)
	}
	return SetReady(ctx, cs, name, ready)
}

// SetNodeReady writes the node's Ready condition, as its kubelet would.
func (s *Server) SetNodeReady(t testing.TB, name string, ready bool) *corev1.Node {
	t.Helper()
	n, err := SetReady(context.Background(), s.Client, name, ready)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// SetReady is SetNodeReady without a testing.TB.
func SetReady(ctx context.Context, cs kubernetes.Interface, name string, ready bool) (*corev1.Node, error) {
	n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("getting node %s: %w", name, err)
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	now := metav1.Now()
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, Reason: "KubeletReady",
		LastHeartbeatTime: now, LastTransitionTime: now}}
	n, err = cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("setting node %s ready=%v: %w", name, ready, err)
	}
	return n, nil
}

// Unschedulable reports whether the node is cordoned.
func (s *Server) Unschedulable(t testing.TB, name string) bool {
	t.Helper()
	n, err := s.Client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting node %s: %v", name, err)
	}
	return n.Spec.Unschedulable
}

// ReplicaSet creates a ReplicaSet (nothing runs it) and returns a controller reference to it for
// its pods.
func (s *Server) ReplicaSet(t testing.TB, ns, name string, labels map[string]string) metav1.OwnerReference {
	t.Helper()
	rs, err := s.Client.AppsV1().ReplicaSets(ns).Create(context.Background(), &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating replicaset %s/%s: %v", ns, name, err)
	}
	return controllerRef("ReplicaSet", rs.Name, rs.UID)
}

// DaemonSet creates a DaemonSet (nothing runs it) and returns a controller reference to it.
func (s *Server) DaemonSet(t testing.TB, ns, name string, labels map[string]string) metav1.OwnerReference {
	t.Helper()
	ds, err := s.Client.AppsV1().DaemonSets(ns).Create(context.Background(), &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating daemonset %s/%s: %v", ns, name, err)
	}
	return controllerRef("DaemonSet", ds.Name, ds.UID)
}

func podTemplate(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}}}
}

func controllerRef(kind, name string, uid types.UID) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: &t, BlockOwnerDeletion: &t}
}

// PodSpec describes a test pod.
type PodSpec struct {
	Labels map[string]string
	// Owner is the pod's controller; nil for a bare pod.
	Owner *metav1.OwnerReference
	// EmptyDir gives the pod an emptyDir volume (local data).
	EmptyDir bool
	// Grace is terminationGracePeriodSeconds; nil = Kubernetes' default (30).
	Grace *int64
}

// Pod creates a pod bound to node (as the scheduler would) and marks it Running (as the kubelet
// would).
func (s *Server) Pod(t testing.TB, ns, name, node string, spec PodSpec) *corev1.Pod {
	t.Helper()
	p, err := CreatePod(context.Background(), s.Client, ns, name, node, spec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// CreatePod is Pod without a testing.TB, for benchmarks' setup loops.
func CreatePod(ctx context.Context, cs kubernetes.Interface, ns, name, node string, spec PodSpec) (*corev1.Pod, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: spec.Labels},
		Spec: corev1.PodSpec{NodeName: node, TerminationGracePeriodSeconds: spec.Grace,
			Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
	}
	if spec.Owner != nil {
		pod.OwnerReferences = []metav1.OwnerReference{*spec.Owner}
	}
	if spec.EmptyDir {
		pod.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	}
	p, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating pod %s/%s: %w", ns, name, err)
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	p, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("marking pod %s/%s running: %w", ns, name, err)
	}
	return p, nil
}

// PodExists reports whether the pod is still there (terminating or not).
func (s *Server) PodExists(t testing.TB, ns, name string) bool {
	t.Helper()
	_, err := s.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatalf("getting pod %s/%s: %v", ns, name, err)
	}
	return true
}

// PDB creates a PodDisruptionBudget with minAvailable over the pods with labels. Its status stays
// empty (no disruption controller), so it refuses every eviction until SetPDBAllowed.
func (s *Server) PDB(t testing.TB, ns, name string, labels map[string]string, minAvailable int) {
	t.Helper()
	ma := intstr.FromInt32(int32(minAvailable))
	_, err := s.Client.PolicyV1().PodDisruptionBudgets(ns).Create(context.Background(), &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &ma, Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pdb %s/%s: %v", ns, name, err)
	}
}

// SetPDBAllowed writes the status a disruption controller would: healthy pods and how many
// disruptions are allowed now.
func (s *Server) SetPDBAllowed(t testing.TB, ns, name string, healthy, desired, allowed int32) {
	t.Helper()
	ctx := context.Background()
	pdb, err := s.Client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting pdb %s/%s: %v", ns, name, err)
	}
	pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, CurrentHealthy: healthy,
		DesiredHealthy: desired, ExpectedPods: healthy, DisruptionsAllowed: allowed}
	if _, err := s.Client.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("updating pdb %s/%s status: %v", ns, name, err)
	}
}

// Kubelet plays the kubelet of node until the test ends: pods being deleted with a grace period
// stop at once (deleted with grace 0), so evictions complete without waiting for the grace.
func (s *Server) Kubelet(t testing.TB, node string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			s.kubeletOnce(ctx, node)
		}
	}()
}

func (s *Server) kubeletOnce(ctx context.Context, node string) {
	pods := s.Client.CoreV1().Pods(metav1.NamespaceAll)
	sel := fields.OneTermEqualSelector("spec.nodeName", node).String()
	list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		time.Sleep(50 * time.Millisecond)
		return
	}
	finish := func(p *corev1.Pod) {
		if p.DeletionTimestamp == nil {
			return
		}
		zero := int64(0)
		_ = s.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero,
			Preconditions: &metav1.Preconditions{UID: &p.UID}})
	}
	for i := range list.Items {
		finish(&list.Items[i])
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: list.ResourceVersion})
	if err != nil {
		time.Sleep(50 * time.Millisecond)
		return
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		if ev.Type == watch.Modified || ev.Type == watch.Added {
			if p, ok := ev.Object.(*corev1.Pod); ok {
				finish(p)
			}
		}
	}
}

// NodeProviderID is kube.ProviderID, repeated so that tests of package kube can build nodes
// independently of the code under test.
func NodeProviderID(az, id string) string { return "aws:///" + az + "/" + id }

// DNSName returns the private DNS name EC2 gives an address in us-east-1.
func DNSName(ip string) string { return "ip-" + strings.ReplaceAll(ip, ".", "-") + ".ec2.internal" }

// LeaseHolder reads the holderIdentity of the Lease namespace/name ("" when released).
func LeaseHolder(t testing.TB, cs kubernetes.Interface, namespace, name string) string {
	t.Helper()
	l, err := cs.CoordinationV1().Leases(namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading Lease %s/%s: %v", namespace, name, err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// WorkerNode is a Ready node of instance ID (providerID in us-east-1a) in a namespace of its
// own, with two pods of the ReplicaSet "web" (Web; the second with an emptyDir) and one of the
// DaemonSet "logs" (Daemon): what a drain evicts and what it leaves.
type WorkerNode struct {
	Name, Namespace, ID string
	Web                 []string
	Daemon              string
}

// WorkerNode creates a WorkerNode; it is deleted at the test's cleanup.
func (s *Server) WorkerNode(t testing.TB) WorkerNode {
	t.Helper()
	n := WorkerNode{Name: Unique("ip-10-0-1-1"), Namespace: s.Namespace(t, "drain"), ID: Unique("i-0d")}
	s.Node(t, n.Name, NodeProviderID("us-east-1a", n.ID), true)
	rs := s.ReplicaSet(t, n.Namespace, "web", map[string]string{"app": "web"})
	ds := s.DaemonSet(t, n.Namespace, "logs", map[string]string{"app": "logs"})
	for i, emptyDir := range []bool{false, true} {
		name := "web-" + string(rune('a'+i))
		s.Pod(t, n.Namespace, name, n.Name, PodSpec{Labels: map[string]string{"app": "web"}, Owner: &rs, EmptyDir: emptyDir})
		n.Web = append(n.Web, name)
	}
	n.Daemon = "logs-x"
	s.Pod(t, n.Namespace, n.Daemon, n.Name, PodSpec{Labels: map[string]string{"app": "logs"}, Owner: &ds})
	return n
}
