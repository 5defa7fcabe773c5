package kube

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/kubectl/pkg/drain"

	"github.com/spotmax/spotmax/pkg/kube/kubetest"
)

var benchQPS = flag.Float64("kube.qps", 0, "client-side QPS of the benchmark clients (0 = spotmax's default 100, burst 2×)")

// benchNode registers a node named like an EKS node with n pods of a ReplicaSet and one
// DaemonSet pod, outside the timer.
func benchNode(b testing.TB, s *kubetest.Server, pods int) (name, id string) {
	b.Helper()
	ctx := context.Background()
	id = kubetest.Unique("i-0bench")
	name = kubetest.Unique("ip-10-2-0-1") + ".ec2.internal"
	s.Node(b, name, ProviderID("us-east-1a", id), true)
	ns := s.Namespace(b, "bench")
	rs := s.ReplicaSet(b, ns, "web", map[string]string{"app": "web"})
	ds := s.DaemonSet(b, ns, "logs", map[string]string{"app": "logs"})
	if _, err := kubetest.CreatePod(ctx, s.Client, ns, "logs-x", name, kubetest.PodSpec{Owner: &ds}); err != nil {
		b.Fatal(err)
	}
	for i := range pods {
		if _, err := kubetest.CreatePod(ctx, s.Client, ns, fmt.Sprintf("web-%03d", i), name, kubetest.PodSpec{Owner: &rs}); err != nil {
			b.Fatal(err)
		}
	}
	return name, id
}

// BenchmarkDrain drains a node of 10 or 100 pods (grace 0: no kubelet) and reports the API
// requests per pod: "spotmax" is NodeFor + Drain (plan, cordon, evict, wait), "kubectl" the
// baseline of kubectl's library used the canonical way (get node, RunCordonOrUncordon,
// RunNodeDrain) with the same settings.
func BenchmarkDrain(b *testing.B) {
	s := kubetest.Shared(b)
	var n atomic.Int64
	qps, burst := float32(*benchQPS), int(2**benchQPS)
	c := connectTest(b, s, ConnectOptions{QPS: qps, Burst: burst, WrapTransport: counting(&n)})
	// The baseline: client-go and kubectl's drain library, with the same limits and counting.
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	cfg.QPS, cfg.Burst = qps, burst
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 100, 200
	}
	cfg.Wrap(counting(&n))
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ways := []struct {
		name  string
		drain func(ctx context.Context, node, id string) error
	}{
		{"spotmax", func(ctx context.Context, node, id string) error {
			nd, err := c.NodeFor(ctx, InstanceRef{ID: id, AZ: "us-east-1a", PrivateDNSName: node})
			if err != nil {
				return err
			}
			_, err = c.Drain(ctx, nd, DrainOptions{GracePeriod: 0, Timeout: time.Minute, Progress: func(DrainProgress) {}})
			return err
		}},
		{"kubectl", func(ctx context.Context, node, _ string) error {
			h := &drain.Helper{Ctx: ctx, Client: cs, GracePeriodSeconds: 0, IgnoreAllDaemonSets: true, DeleteEmptyDirData: true,
				ChunkSize: 500, Timeout: time.Minute, EvictErrorRetryDelay: 5 * time.Second, Out: io.Discard, ErrOut: io.Discard}
			nd, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if err := drain.RunCordonOrUncordon(h, nd, true); err != nil {
				return err
			}
			return drain.RunNodeDrain(h, node)
		}},
	}
	// What spotmax adds around kubectl's eviction loop, alone: the node lookup by providerID/DNS
	// name, the plan (pod listing and filters) and the cordon, on one node of 100 pods.
	b.Run("pods=100/lookup+plan+cordon", func(b *testing.B) {
		node, id := benchNode(b, s, 100)
		var requests int64
		for b.Loop() {
			n.Store(0)
			nd, err := c.NodeFor(context.Background(), InstanceRef{ID: id, AZ: "us-east-1a", PrivateDNSName: node})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.PlanDrain(context.Background(), node, DrainOptions{}); err != nil {
				b.Fatal(err)
			}
			if err := c.Cordon(context.Background(), nd); err != nil {
				b.Fatal(err)
			}
			requests += n.Load()
			b.StopTimer()
			if err := c.Uncordon(context.Background(), nd); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
	})
	for _, pods := range []int{10, 100} {
		for _, way := range ways {
			b.Run(fmt.Sprintf("pods=%d/%s", pods, way.name), func(b *testing.B) {
				var requests int64
				for b.Loop() {
					b.StopTimer()
					node, id := benchNode(b, s, pods)
					n.Store(0)
					b.StartTimer()
					if err := way.drain(context.Background(), node, id); err != nil {
						b.Fatal(err)
					}
					requests += n.Load()
				}
				b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
				b.ReportMetric(float64(requests)/float64(b.N)/float64(pods), "requests/pod")
			})
		}
	}
}

// TestDrainRequestsPerPodAreConstant checks the API cost of a drain: two requests per pod (the
// eviction and one check that the pod is gone; with grace 0 it is gone at the first check) plus
// a constant for the node lookup, the plans (pod listing, DaemonSet lookup) and the cordon.
func TestDrainRequestsPerPodAreConstant(t *testing.T) {
	s := kubetest.Shared(t)
	var n atomic.Int64
	c := connectTest(t, s, ConnectOptions{WrapTransport: counting(&n)})
	cost := map[int]int64{}
	for _, pods := range []int{5, 25} {
		node, id := benchNode(t, s, pods)
		n.Store(0)
		nd, err := c.NodeFor(context.Background(), InstanceRef{ID: id, AZ: "us-east-1a", PrivateDNSName: node})
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Drain(context.Background(), nd, DrainOptions{GracePeriod: 0, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Evicted) != pods {
			t.Fatalf("evicted %d pods, want %d", len(res.Evicted), pods)
		}
		cost[pods] = n.Load()
	}
	t.Logf("requests: %v", cost)
	if per := float64(cost[25]-cost[5]) / 20; per != 2 {
		t.Errorf("%.2f requests per extra pod, want 2 (requests %v)", per, cost)
	}
	if fixed := cost[5] - 2*5; fixed > 5 {
		t.Errorf("%d requests besides the per-pod ones, want at most 5", fixed)
	}
}
