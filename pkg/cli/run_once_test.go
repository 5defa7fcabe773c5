package cli

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spotmax/spotmax/pkg/controller"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/kube/kubetest"
)

// gateElector leads once its gate opens and, like the real electors, keeps campaigning until
// its context ends; released closes then (the leadership given back).
type gateElector struct {
	gate, released chan struct{}
}

func (g *gateElector) Run(ctx context.Context, lead func(context.Context)) error {
	defer close(g.released)
	select {
	case <-g.gate:
		lead(ctx)
	case <-ctx.Done():
	}
	<-ctx.Done()
	return nil
}

func onceController(t *testing.T) (*controller.Controller, *IOStreams) {
	t.Helper()
	e := newTestEnv(t)
	e.group(t, "web", 1, map[string]string{groupconfig.TagGroup: "web"})
	ios, _, _, _ := Test()
	f := NewFactory(ios)
	l, err := f.Lister(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.Workflow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &controller.Controller{Lister: l, Workflow: w, Interval: time.Second, MaxParallel: 1, Log: f.Logger()}, ios
}

// TestRunOnceWaitsForLeadership is issue 11 case 9: `run --once` with leader election does not
// skip it: nothing is reconciled before it leads, the pass runs as the leader and the leadership
// is released at the end; stopped before leading, it did nothing and says so (exit 130).
func TestRunOnceWaitsForLeadership(t *testing.T) {
	c, ios := onceController(t)
	el := &gateElector{gate: make(chan struct{}), released: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- runOnce(context.Background(), ios, c, el) }()
	time.Sleep(300 * time.Millisecond)
	if st := c.Stats(); st.Reconciles != 0 {
		t.Fatalf("reconciled before leading: %+v", st)
	}
	close(el.gate)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runOnce: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("runOnce did not return after leading")
	}
	if st := c.Stats(); st.Reconciles != 1 {
		t.Errorf("stats after the pass: %+v, want one reconcile", st)
	}
	select {
	case <-el.released:
	default:
		t.Error("runOnce returned without ending the campaign (leadership not released)")
	}

	c, ios = onceController(t)
	el = &gateElector{gate: make(chan struct{}), released: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	err := runOnce(ctx, ios, c, el)
	if !errors.Is(err, errNotLeader) || exitCode(err) != ExitCancelled || c.Stats().Reconciles != 0 {
		t.Errorf("stopped before leading: %v (exit %d), stats %+v", err, exitCode(err), c.Stats())
	}
}

// TestRunOnceLeaderElectKubernetes runs `spotmax run --once --leader-elect kubernetes` against a
// real kube-apiserver: it follows while another controller holds the Lease, and otherwise takes
// the Lease, reconciles once and releases it.
func TestRunOnceLeaderElectKubernetes(t *testing.T) {
	srv := kubetest.Start(t)
	e := newTestEnv(t)
	e.group(t, "web", 1, map[string]string{groupconfig.TagGroup: "web"})
	leaseName := "spotmax-" + e.Region().Name()
	leases := srv.Client.CoordinationV1().Leases("kube-system")
	args := []string{"run", "--once", "--no-cloudwatch", "--leader-elect", "kubernetes",
		"--kubeconfig", srv.Kubeconfig, "--lease-namespace", "kube-system"}

	other, secs, now := "other-host_1", int32(15), metav1.NewMicroTime(time.Now())
	if _, err := leases.Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: leaseName},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &other, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	time.AfterFunc(3*time.Second, func() { close(stop) })
	errOut, code := runUntil(t, stop, args...)
	if code != ExitCancelled || strings.Contains(errOut, "reconciled:") || !strings.Contains(errOut, errNotLeader.Error()) {
		t.Errorf("--once while another controller leads: exit %d, stderr:\n%s", code, errOut)
	}
	if err := leases.Delete(context.Background(), leaseName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	errOut, code = runUntil(t, make(chan struct{}), args...)
	if code != ExitOK || !strings.Contains(errOut, "reconciled:") || !strings.Contains(errOut, "leading") {
		t.Fatalf("--once with the Lease free: exit %d, stderr:\n%s", code, errOut)
	}
	l, err := leases.Get(context.Background(), leaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the pass did not take the Lease: %v", err)
	}
	host, _ := os.Hostname()
	if h := l.Spec.HolderIdentity; h != nil && *h != "" {
		t.Errorf("Lease holder after --once = %q (this host %s), want it released", *h, host)
	}
}
