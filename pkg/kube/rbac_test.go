package kube

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/spotmax/spotmax/pkg/kube/kubetest"
)

// rbacFromDocs returns the RBAC manifest that docs/kubernetes.md tells operators to apply: the
// yaml block after the <!-- rbac --> marker.
func rbacFromDocs(t *testing.T) []any {
	t.Helper()
	b, err := os.ReadFile("../../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "<!-- rbac -->\n```yaml\n")
	if i < 0 {
		t.Fatal("docs/kubernetes.md has no <!-- rbac --> yaml block")
	}
	doc = doc[i+len("<!-- rbac -->\n```yaml\n"):]
	doc = doc[:strings.Index(doc, "```")]
	var objs []any
	for _, part := range strings.Split(doc, "\n---\n") {
		js, err := yaml.YAMLToJSON([]byte(part))
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(js, nil, nil)
		if err != nil {
			t.Fatalf("decoding the documented manifest: %v", err)
		}
		objs = append(objs, obj)
	}
	return objs
}

// The documented ClusterRole is enough for a drain, and a user without it is told so.
func TestDrainWithTheDocumentedRBAC(t *testing.T) {
	s := kubetest.Shared(t)
	ctx := context.Background()
	for _, obj := range rbacFromDocs(t) {
		var err error
		switch o := obj.(type) {
		case *rbacv1.ClusterRole:
			_, err = s.Client.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = s.Client.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("unexpected object %T in the documented manifest", obj)
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	tn := newTestNode(t, s)
	s.PDB(t, tn.ns, "web", map[string]string{"app": "web"}, 1)
	s.SetPDBAllowed(t, tn.ns, "web", 2, 1, 1)

	// Not in the group: connecting works (anyone may read /version), finding the node does not.
	stranger, err := Connect(ctx, Source{Path: s.UserKubeconfig(t, "stranger"), From: "test"}, ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.NodeFor(ctx, InstanceRef{ID: "i-0x", PrivateDNSName: tn.name}); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("got %v, want forbidden", err)
	}

	c, err := Connect(ctx, Source{Path: s.UserKubeconfig(t, "spotmax", "spotmax:drainers"), From: "test"}, ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node, err := c.Node(ctx, tn.name)
	if err != nil {
		t.Fatal(err)
	}
	// The budget allows one eviction; the second waits until the test allows another.
	res, err := c.Drain(ctx, node, DrainOptions{GracePeriod: 0, Timeout: 300 * time.Millisecond, EvictRetry: 50 * time.Millisecond})
	if !errors.Is(err, ErrDrainTimeout) || !strings.Contains(err.Error(), "The disruption budget web does not allow evicting pods currently") {
		t.Fatalf("got %v, want the second eviction refused by the budget", err)
	}
	if len(res.Evicted) != 1 {
		t.Fatalf("evicted %v, want one pod", res.Evicted)
	}
	s.SetPDBAllowed(t, tn.ns, "web", 1, 0, 1)
	if res, err = c.Drain(ctx, node, DrainOptions{GracePeriod: 0}); err != nil || len(res.Evicted) != 1 {
		t.Fatalf("evicted %v, err %v", res, err)
	}
	if !s.Unschedulable(t, tn.name) || !s.PodExists(t, tn.ns, tn.daemon) {
		t.Error("want the node cordoned and the DaemonSet pod left")
	}
}
