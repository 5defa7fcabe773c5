package charts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/spotmax/spotmax/pkg/kube"
	"github.com/spotmax/spotmax/pkg/kube/kubetest"
	"github.com/spotmax/spotmax/pkg/leader"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// helmPath finds the helm that scripts/testassets/build-helm.sh built, where pkg/internal/testassets
// finds the other programs (that package is internal to pkg/): SPOTMAX_ASSETS_DIR, else
// .cache/testassets/bin. Missing, it skips the test, or fails it when SPOTMAX_REQUIRE_ASSETS=1.
func helmPath(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SPOTMAX_ASSETS_DIR")
	if dir == "" {
		dir = filepath.Join("..", ".cache", "testassets", "bin")
	}
	p := filepath.Join(dir, "helm")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	why := "helm is not built: run scripts/build-test-assets.sh (or make test-assets)"
	if os.Getenv("SPOTMAX_REQUIRE_ASSETS") == "1" {
		t.Fatalf("missing test prerequisite (SPOTMAX_REQUIRE_ASSETS=1): %s", why)
	}
	t.Skipf("skipping: %s", why)
	return ""
}

// release is one `helm template` of the chart: one region of one account.
type release struct {
	name, namespace, region, account string
	objs                             []*unstructured.Unstructured
}

// render runs the real helm on charts/spotmax with the release's values.
func render(t *testing.T, name, namespace string, set ...string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	helm := helmPath(t)
	args := []string{"template", name, "spotmax", "--namespace", namespace}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(helm, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(string(out), "\n---") {
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("rendered manifest is not YAML: %v\n%s", err, doc)
		}
		if string(js) == "null" {
			continue
		}
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(js); err != nil {
			t.Fatalf("rendered manifest is not a Kubernetes object: %v\n%s", err, doc)
		}
		objs = append(objs, o)
	}
	return objs, nil
}

func renderRelease(t *testing.T, name, namespace, region, account string) *release {
	t.Helper()
	objs, err := render(t, name, namespace,
		"region="+region,
		"account="+account,
		"queueURL=https://sqs."+region+".amazonaws.com/"+account+"/spotmax-events",
		"image.repository=registry.invalid/spotmax",
		"serviceAccount.roleArn=arn:aws:iam::"+account+":role/spotmax-controller")
	if err != nil {
		t.Fatal(err)
	}
	return &release{name: name, namespace: namespace, region: region, account: account, objs: objs}
}

func (r *release) find(t *testing.T, kind string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range r.objs {
		if o.GetKind() == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("release %s renders %d %s objects, want 1", r.name, len(found), kind)
	}
	return found[0]
}

func (r *release) container(t *testing.T) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(r.find(t, "Deployment").Object, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("release %s: %d containers, want 1", r.name, len(cs))
	}
	return cs[0].(map[string]any)
}

// arg returns the value of --flag=value in the container's args.
func (r *release) arg(t *testing.T, flag string) string {
	t.Helper()
	args, _, _ := unstructured.NestedStringSlice(r.container(t), "args")
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+flag+"="); ok {
			return v
		}
	}
	t.Fatalf("release %s: no --%s in args %q", r.name, flag, args)
	return ""
}

func (r *release) serviceAccount(t *testing.T) string {
	t.Helper()
	return "system:serviceaccount:" + r.namespace + ":" + r.find(t, "ServiceAccount").GetName()
}

// apply applies every object with server-side apply; dryRun asks the server to validate and
// admit them without storing them (kubectl apply --server-side --dry-run=server).
func apply(ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured, dryRun bool) error {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{FieldManager: "spotmax-chart-test"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, o.GetName(), err)
		}
		js, err := o.MarshalJSON()
		if err != nil {
			return err
		}
		if _, err := dyn.Resource(m.Resource).Namespace(o.GetNamespace()).Patch(ctx, o.GetName(), types.ApplyPatchType, js, opts); err != nil {
			return fmt.Errorf("applying %s %s/%s: %w", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}

// The chart renders what the controller needs: two replicas electing a leader with a Lease of
// their own, the IRSA annotation, the scrape annotations, the region and queue; and it applies
// with a server-side dry-run to a real kube-apiserver.
func TestChartRendersAndApplies(t *testing.T) {
	s := kubetest.Shared(t)
	ctx := context.Background()
	ns := s.Namespace(t, "spotmax")
	r := renderRelease(t, "spotmax-use1", ns, "us-east-1", "111122223333")

	if err := apply(ctx, s.Config, r.objs, true); err != nil {
		t.Fatalf("server-side dry-run: %v", err)
	}
	for _, o := range r.objs {
		if _, err := s.Client.CoreV1().ServiceAccounts(ns).Get(ctx, o.GetName(), metav1.GetOptions{}); o.GetKind() == "ServiceAccount" && !apierrors.IsNotFound(err) {
			t.Fatalf("dry-run stored ServiceAccount %s (err %v)", o.GetName(), err)
		}
	}

	d := r.find(t, "Deployment")
	if n, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas"); n != 2 {
		t.Errorf("replicas %d, want 2", n)
	}
	if got := r.arg(t, "leader-elect"); got != "kubernetes" {
		t.Errorf("--leader-elect=%s, want kubernetes", got)
	}
	if got := r.arg(t, "lease-namespace"); got != ns {
		t.Errorf("--lease-namespace=%s, want the release's namespace %s", got, ns)
	}
	if got := r.arg(t, "region"); got != "us-east-1" {
		t.Errorf("--region=%s", got)
	}
	if got := r.arg(t, "queue-url"); got != "https://sqs.us-east-1.amazonaws.com/111122223333/spotmax-events" {
		t.Errorf("--queue-url=%s", got)
	}
	if got := r.arg(t, "metrics-addr"); got != ":9108" {
		t.Errorf("--metrics-addr=%s, want :9108", got)
	}
	ann, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "annotations")
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "9108" || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("pod annotations %v, want prometheus.io scrape/port/path", ann)
	}
	if got := r.find(t, "ServiceAccount").GetAnnotations()["eks.amazonaws.com/role-arn"]; got != "arn:aws:iam::111122223333:role/spotmax-controller" {
		t.Errorf("IRSA annotation %q", got)
	}
	if sa, _, _ := unstructured.NestedString(d.Object, "spec", "template", "spec", "serviceAccountName"); sa != r.find(t, "ServiceAccount").GetName() {
		t.Errorf("pods run as service account %q, want the chart's", sa)
	}
	if uid, _, _ := unstructured.NestedInt64(d.Object, "spec", "template", "spec", "securityContext", "runAsUser"); uid != 65532 {
		t.Errorf("runAsUser %d, want the image's 65532", uid)
	}

	// helm lint passes, and metrics.serviceMonitor.enabled adds a ServiceMonitor and the Service
	// it selects (prometheus-operator's CRD is not in the test server, so these are only rendered).
	lint := exec.Command(helmPath(t), "lint", "spotmax", "--strict", "--set", "region=us-east-1,queueURL=q,image.repository=r")
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("helm lint --strict: %v\n%s", err, out)
	}
	objs, err := render(t, "sm", ns, "region=us-east-1", "queueURL=q", "image.repository=r", "metrics.serviceMonitor.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, o := range objs {
		kinds[o.GetKind()] = true
	}
	if !kinds["ServiceMonitor"] || !kinds["Service"] {
		t.Errorf("with metrics.serviceMonitor.enabled the chart renders %v, want a ServiceMonitor and a Service", kinds)
	}

	// Bad values are refused with a message that names them.
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"queueURL=q", "image.repository=r"}, "region is required"},
		{[]string{"region=us-east-1", "image.repository=r"}, "queueURL is required"},
		{[]string{"region=us-east-1", "queueURL=q"}, "image.repository is required"},
	} {
		if _, err := render(t, "bad", ns, tc.set...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("helm template with %v: %v, want an error saying %q", tc.set, err, tc.want)
		}
	}
}

// accessReview asks the API server whether user may do verb on a Lease (name "" for any).
func accessReview(ctx context.Context, t *testing.T, cs kubernetes.Interface, user, ns, group, resource, verb, name string) bool {
	t.Helper()
	sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authv1.SubjectAccessReview{Spec: authv1.SubjectAccessReviewSpec{
		User:               user,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &authv1.ResourceAttributes{Namespace: ns, Group: group, Resource: resource, Verb: verb, Name: name},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}

// Two releases side by side — two regions of two accounts in one namespace, the documented way to
// serve many (docs/install.md) — have their own Lease each, and each ServiceAccount may do on
// Leases exactly what client-go's leader election does (get, create, update its own Lease) and
// nothing else: not the other release's Lease, not secrets, not pods. The controller's real
// leader election, impersonating the ServiceAccount, wins its Lease.
func TestChartRBACIsTheLeaseOnly(t *testing.T) {
	s := kubetest.Shared(t)
	ctx := context.Background()
	ns := s.Namespace(t, "spotmax")
	use1 := renderRelease(t, "spotmax-use1", ns, "us-east-1", "111122223333")
	euw1 := renderRelease(t, "spotmax-euw1", ns, "eu-west-1", "444455556666")
	for _, r := range []*release{use1, euw1} {
		if err := apply(ctx, s.Config, r.objs, false); err != nil {
			t.Fatalf("applying release %s: %v", r.name, err)
		}
	}
	lease := func(r *release) string { return r.arg(t, "lease-name") }
	if lease(use1) == lease(euw1) {
		t.Fatalf("two releases share the Lease %s: their leaders would exclude each other", lease(use1))
	}
	if use1.serviceAccount(t) == euw1.serviceAccount(t) {
		t.Fatalf("two releases share the ServiceAccount %s: one IAM role for two accounts", use1.serviceAccount(t))
	}

	const coord, leases = "coordination.k8s.io", "leases"
	for _, r := range []*release{use1, euw1} {
		other := euw1
		if r == euw1 {
			other = use1
		}
		sa := r.serviceAccount(t)
		for _, c := range []struct {
			group, resource, verb, name string
			want                        bool
		}{
			{coord, leases, "get", lease(r), true},
			{coord, leases, "update", lease(r), true},
			{coord, leases, "create", "", true},
			{coord, leases, "get", lease(other), false},
			{coord, leases, "update", lease(other), false},
			{coord, leases, "delete", lease(r), false},
			{coord, leases, "list", "", false},
			{coord, leases, "watch", "", false},
			{"", "secrets", "list", "", false},
			{"", "secrets", "get", "", false},
			{"", "pods", "delete", "", false},
			{"", "configmaps", "update", "", false},
			{"apps", "deployments", "update", r.find(t, "Deployment").GetName(), false},
		} {
			if got := accessReview(ctx, t, s.Client, sa, ns, c.group, c.resource, c.verb, c.name); got != c.want {
				t.Errorf("%s may %s %s %q: %v, want %v", sa, c.verb, c.resource, c.name, got, c.want)
			}
		}
	}

	// The real leader election as use1's ServiceAccount (impersonated): it creates and holds its
	// Lease, and a Get of the other release's Lease is forbidden.
	cfg := rest.CopyConfig(s.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: use1.serviceAccount(t), Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// spotmax's own client, as the controller makes it, with the same impersonation.
	sa := use1.serviceAccount(t)
	kc, err := kube.Connect(ctx, kube.Source{Path: s.Kubeconfig, From: "test"}, kube.ConnectOptions{RequestTimeout: 5 * time.Second,
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper { return impersonate{rt: rt, user: sa, ns: ns} }})
	if err != nil {
		t.Fatal(err)
	}
	elCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	led := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- (&leader.KubeLease{Client: kc, Namespace: ns, Name: lease(use1), Identity: "pod-a",
			LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond,
		}).Run(elCtx, func(ctx context.Context) {
			close(led)
			<-ctx.Done()
		})
	}()
	select {
	case <-led:
	case <-elCtx.Done():
		t.Fatalf("leader election as %s did not win the Lease %s/%s", use1.serviceAccount(t), ns, lease(use1))
	}
	l, err := s.Client.CoordinationV1().Leases(ns).Get(ctx, lease(use1), metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != "pod-a" {
		t.Fatalf("Lease %s after winning: %+v, %v; want held by pod-a", lease(use1), l, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoordinationV1().Leases(ns).Get(ctx, lease(euw1), metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("getting the other release's Lease as %s: %v, want forbidden", use1.serviceAccount(t), err)
	}
	if _, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing secrets as %s: %v, want forbidden", use1.serviceAccount(t), err)
	}
	var status *apierrors.StatusError
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "any", metav1.DeleteOptions{}); !errors.As(err, &status) || !apierrors.IsForbidden(err) {
		t.Errorf("deleting a pod as %s: %v, want forbidden", use1.serviceAccount(t), err)
	}
}

// impersonate makes every request as a ServiceAccount of namespace ns (the API server's
// Impersonate-User and Impersonate-Group headers; the test's admin may impersonate).
type impersonate struct {
	rt       http.RoundTripper
	user, ns string
}

func (i impersonate) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Impersonate-User", i.user)
	for _, g := range []string{"system:serviceaccounts", "system:serviceaccounts:" + i.ns, "system:authenticated"} {
		req.Header.Add("Impersonate-Group", g)
	}
	return i.rt.RoundTrip(req)
}
