package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/kube"
	"github.com/spotmax/spotmax/pkg/kube/kubetest"
	"github.com/spotmax/spotmax/pkg/metrics"
)

// drainCluster is a real API server with a node "worker-1" carrying two pods of a ReplicaSet
// (one with an emptyDir) and one of a DaemonSet, in namespace "shop".
func drainCluster(t *testing.T) *kubetest.Server {
	t.Helper()
	s := kubetest.Start(t)
	if _, err := s.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Node(t, "worker-1", "aws:///us-east-1a/i-0123456789abcdef0", true)
	rs := s.ReplicaSet(t, "shop", "web", map[string]string{"app": "web"})
	ds := s.DaemonSet(t, "shop", "logs", map[string]string{"app": "logs"})
	s.Pod(t, "shop", "web-a", "worker-1", kubetest.PodSpec{Labels: map[string]string{"app": "web"}, Owner: &rs})
	s.Pod(t, "shop", "web-b", "worker-1", kubetest.PodSpec{Labels: map[string]string{"app": "web"}, Owner: &rs, EmptyDir: true})
	s.Pod(t, "shop", "logs-x", "worker-1", kubetest.PodSpec{Labels: map[string]string{"app": "logs"}, Owner: &ds})
	// No kubelet would confirm the pods' end: evictions are immediate with --grace-period 0, and
	// the stand-in finishes them otherwise.
	s.Kubelet(t, "worker-1")
	t.Setenv("KUBECONFIG", "")
	t.Setenv("HOME", t.TempDir())
	return s
}

var elapsedRE = regexp.MustCompile(`"elapsed_seconds": [0-9.e-]+`)

func TestDrainByNodeName(t *testing.T) {
	s := drainCluster(t)

	// Dry run: the plan, nothing changed.
	out, errOut, code := run(t, "drain", "worker-1", "--kubeconfig", s.Kubeconfig, "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"would cordon node worker-1 and evict 2 pod(s)", "shop/web-a", "shop/web-b", "DaemonSet-managed Pods: shop/logs-x"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output does not contain %q:\n%s", want, out)
		}
	}
	if s.Unschedulable(t, "worker-1") || !s.PodExists(t, "shop", "web-a") {
		t.Fatal("the dry run changed something")
	}

	// Without --yes and without a terminal: refused, nothing changed.
	_, errOut, code = run(t, "drain", "worker-1", "--kubeconfig", s.Kubeconfig)
	if code != ExitUsage || !strings.Contains(errOut, "--yes") || s.Unschedulable(t, "worker-1") {
		t.Fatalf("without --yes: exit %d, %q", code, errOut)
	}

	out, errOut, code = run(t, "drain", "worker-1", "--kubeconfig", s.Kubeconfig, "--grace-period", "30s", "--yes", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res drainJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Node != "worker-1" || strings.Join(res.Pods, " ") != "shop/web-a shop/web-b" || res.KubeconfigFrom != "--kubeconfig" {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(errOut, "draining node worker-1: 2 of 2 pod(s) left") || !strings.Contains(errOut, "draining node worker-1: 0 of 2 pod(s) left") {
		t.Errorf("progress on stderr:\n%s", errOut)
	}
	masked := strings.ReplaceAll(elapsedRE.ReplaceAllString(out, `"elapsed_seconds": N`), s.Kubeconfig, "KUBECONFIG")
	golden(t, "drain.json", masked)
	if !s.Unschedulable(t, "worker-1") {
		t.Error("node not cordoned")
	}
	if s.PodExists(t, "shop", "web-a") || s.PodExists(t, "shop", "web-b") || !s.PodExists(t, "shop", "logs-x") {
		t.Error("want the web pods evicted and the DaemonSet pod left")
	}

	// A drained node drains again: nothing to evict.
	out, errOut, code = run(t, "drain", "worker-1", "--kubeconfig", s.Kubeconfig, "--yes", "--delay", "10ms")
	if code != 0 || !strings.Contains(out, "evicted 0 pod(s)") || !strings.Contains(errOut, "node worker-1 cordoned; evicting in 10ms") {
		t.Errorf("second drain: exit %d, %q %q", code, out, errOut)
	}
}

func TestDrainErrors(t *testing.T) {
	s := drainCluster(t)
	s.Pod(t, "shop", "bare", "worker-1", kubetest.PodSpec{})
	missing := filepath.Join(t.TempDir(), "k8sconfig")

	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want []string
	}{
		{"node not found", []string{"drain", "worker-9", "--kubeconfig", s.Kubeconfig, "--yes"}, nil, ExitNotFound,
			[]string{"no node named worker-9 in the cluster at " + s.URL}},
		{"kubeconfig missing", []string{"drain", "worker-1", "--kubeconfig", missing, "--yes"}, nil, ExitError,
			[]string{"kubeconfig " + missing + " (from --kubeconfig): file does not exist"}},
		{"KUBECONFIG missing", []string{"drain", "worker-1", "--yes"}, map[string]string{"KUBECONFIG": missing}, ExitError,
			[]string{"kubeconfig " + missing + " (from KUBECONFIG): file does not exist"}},
		{"default missing", []string{"drain", "worker-1", "--yes"}, map[string]string{"HOME": "/nonexistent"}, ExitError,
			[]string{"kubeconfig /nonexistent/.kube/config (from the default ~/.kube/config): file does not exist"}},
		{"bare pod without --force", []string{"drain", "worker-1", "--kubeconfig", s.Kubeconfig, "--yes"}, nil, ExitError,
			[]string{"refusing to drain node worker-1, nothing was changed", "use --force", "shop/bare"}},
		{"bad timeout", []string{"drain", "worker-1", "--timeout", "-1s"}, nil, ExitUsage, []string{"must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, errOut, code := run(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d: %s", code, tt.code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not contain %q", errOut, w)
				}
			}
		})
	}
	if s.Unschedulable(t, "worker-1") {
		t.Error("a failed drain cordoned the node")
	}

	// A budget that allows nothing: the drain times out, names the pods and why, and the node
	// stays cordoned.
	s.PDB(t, "shop", "web", map[string]string{"app": "web"}, 2)
	s.SetPDBAllowed(t, "shop", "web", 2, 2, 0)
	_, errOut, code := run(t, "drain", "worker-1", "--kubeconfig", s.Kubeconfig, "--force", "--grace-period", "0s", "--timeout", "1s", "--yes")
	if code != ExitError {
		t.Errorf("exit %d, want %d", code, ExitError)
	}
	for _, w := range []string{"drain timed out after 1s", "shop/web-a (The disruption budget web needs 2 healthy pods and has 2 currently)", "node worker-1 stays cordoned"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr %q does not contain %q", errOut, w)
		}
	}
	if !s.Unschedulable(t, "worker-1") || s.PodExists(t, "shop", "bare") {
		t.Error("want the node cordoned and the bare pod evicted (--force)")
	}
}

// An instance id finds the node by providerID and the kubeconfig from the group's tag.
func TestDrainInstanceUsesTheGroupsKubeconfig(t *testing.T) {
	s := kubetest.Start(t)
	e := newTestEnv(t)
	t.Setenv("KUBECONFIG", "")
	e.group(t, "eks", 1, map[string]string{groupconfig.TagGroup: "eks", groupconfig.TagK8sConfigFilePath: s.Kubeconfig,
		groupconfig.TagK8sNodeDrainGraceSecond: "0"})
	g, _ := e.Region().Group("eks")
	id := g.Members[0].InstanceID
	inst, _ := e.Region().Instance(id)
	s.Node(t, "node-of-"+id, kube.ProviderID(inst.AZ, id), true)
	ns := "default"
	rs := s.ReplicaSet(t, ns, "web", map[string]string{"app": "web"})
	s.Pod(t, ns, "web-a", "node-of-"+id, kubetest.PodSpec{Labels: map[string]string{"app": "web"}, Owner: &rs})

	out, errOut, code := run(t, "drain", id, "--yes", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res drainJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Node != "node-of-"+id || res.Instance != id || res.KubeconfigFrom != "spotmax:k8s_config_file_path of group eks" || len(res.Pods) != 1 {
		t.Errorf("result %+v", res)
	}
	if s.PodExists(t, ns, "web-a") {
		t.Error("pod not evicted (the group's grace 0 should evict at once)")
	}
	// The drain is published (NodeDrained) and recorded in the audit trail (issue 13).
	evs := e.Region().LogEvents(metrics.DefaultActionLogGroup)
	if len(evs) != 1 || !strings.Contains(evs[0].Message, `"action":"drain"`) || !strings.Contains(evs[0].Message, `"node":"node-of-`+id+`"`) ||
		!strings.Contains(evs[0].Message, `"result":"succeeded"`) || !strings.Contains(evs[0].Message, `"actor":"spotmax drain (`) {
		t.Errorf("action records after the drain: %+v", evs)
	}
	drained := 0
	for _, d := range e.Region().MetricData(metrics.Namespace) {
		if d.MetricName == string(metrics.NodeDrained) && d.Dimensions[metrics.DimensionGroup] == "eks" {
			drained += int(d.Sum)
		}
	}
	if drained != 1 {
		t.Errorf("NodeDrained for group eks = %d, want 1", drained)
	}

	// An instance without a node, of a group without the tag: KUBECONFIG applies, and the error
	// says what was looked for.
	t.Setenv("KUBECONFIG", s.Kubeconfig)
	e.group(t, "plain", 1, map[string]string{groupconfig.TagGroup: "plain"})
	g, _ = e.Region().Group("plain")
	id = g.Members[0].InstanceID
	inst, _ = e.Region().Instance(id)
	_, errOut, code = run(t, "drain", id, "--yes")
	if code != ExitNotFound {
		t.Errorf("exit %d, want %d", code, ExitNotFound)
	}
	want := "no node for " + id + " (looked for providerID aws:///" + inst.AZ + "/" + id + " and node name ip-"
	if !strings.Contains(errOut, want) || !strings.Contains(errOut, "(from KUBECONFIG)") {
		t.Errorf("stderr %q does not contain %q and the kubeconfig's source", errOut, want)
	}
	if _, errOut, code := run(t, "drain", "i-0000000000000dead", "--yes"); code != ExitNotFound {
		t.Errorf("unknown instance: exit %d: %s", code, errOut)
	}
}

func TestDrainProgressOnATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newProgressWriter(&IOStreams{ErrOut: &buf, ErrTTY: true}, 0)
	p.update(kube.DrainProgress{Node: "n", Total: 100, Left: 100})
	p.update(kube.DrainProgress{Node: "n", Total: 100, Left: 37, Elapsed: 12 * time.Second})
	p.finish()
	if got, want := buf.String(), "\r\033[Kdraining node n: 100 of 100 pod(s) left, 0s elapsed\r\033[Kdraining node n: 37 of 100 pod(s) left, 12s elapsed\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	buf.Reset()
	p = newProgressWriter(&IOStreams{ErrOut: &buf}, 5*time.Second)
	for i, left := range []int{100, 90, 80, 70, 0} {
		p.update(kube.DrainProgress{Node: "n", Total: 100, Left: left, Elapsed: time.Duration(i) * 2 * time.Second})
	}
	p.finish()
	if got, want := buf.String(), "draining node n: 100 of 100 pod(s) left, 0s elapsed\ndraining node n: 70 of 100 pod(s) left, 6s elapsed\ndraining node n: 0 of 100 pod(s) left, 8s elapsed\n"; got != want {
		t.Errorf("plain lines:\ngot  %q\nwant %q", got, want)
	}
}
