package cli

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/kube/kubetest"
)

// TestRunLeaderElectFlags checks that bad leader-election flags are usage errors that name the
// flag and the value.
func TestRunLeaderElectFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--leader-elect", "etcd"}, `invalid --leader-elect "etcd": want none, consul or kubernetes`},
		{[]string{"--leader-elect", "consul", "--kubeconfig", "/k"}, "--kubeconfig is for --leader-elect kubernetes, not consul"},
		{[]string{"--lease-name", "x"}, "--lease-name is for --leader-elect kubernetes, not none"},
		{[]string{"--leader-elect", "kubernetes", "--leader-key", "k"}, "--leader-key is for --leader-elect consul, not kubernetes"},
		{[]string{"--leader-elect", "kubernetes", "--lease-namespace", "Kube_System"}, `invalid --lease-namespace "Kube_System"`},
		{[]string{"--leader-elect", "kubernetes", "--lease-name", "spotmax/us-east-1"}, `invalid --lease-name "spotmax/us-east-1"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, errOut, code := run(t, append([]string{"run"}, tc.args...)...)
			if code != ExitUsage || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", code, errOut, ExitUsage, tc.want)
			}
		})
	}
}

// TestRunLeaderElectKubeconfigMissing checks that a kubeconfig that does not exist is reported
// with its path and where it came from, before the controller starts.
func TestRunLeaderElectKubeconfigMissing(t *testing.T) {
	newTestEnv(t)
	_, errOut, code := run(t, "run", "--no-cloudwatch", "--leader-elect", "kubernetes", "--kubeconfig", "/nonexistent/k8sconfig")
	if code != ExitError || !strings.Contains(errOut, "kubeconfig /nonexistent/k8sconfig (from --kubeconfig)") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
}

// runUntil runs the CLI with args until stop is closed and returns its stderr and exit code.
func runUntil(t *testing.T, stop <-chan struct{}, args ...string) (stderr string, code int) {
	t.Helper()
	ios, _, _, errOut := Test()
	f := NewFactory(ios)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- Run(ctx, f, args) }()
	select {
	case <-stop:
	case code = <-done:
		cancel()
		return errOut.String(), code
	}
	cancel()
	select {
	case code = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("spotmax run did not stop")
	}
	return errOut.String(), code
}

var reconciled = regexp.MustCompile(`Reconciles:[1-9]`)

// TestRunLeaderElectKubernetes runs `spotmax run --leader-elect kubernetes` against a real
// kube-apiserver and the simulated region: it leads (and reconciles) only while it holds the
// Lease spotmax-<region>, and releases the Lease when it stops.
func TestRunLeaderElectKubernetes(t *testing.T) {
	srv := kubetest.Start(t)
	e := newTestEnv(t)
	e.group(t, "web", 1, map[string]string{groupconfig.TagGroup: "web"})
	leaseName := "spotmax-" + e.Region().Name()
	leases := srv.Client.CoordinationV1().Leases("kube-system")
	host, _ := os.Hostname()
	self := fmt.Sprintf("%s_%d", host, os.Getpid())
	args := []string{"run", "--no-cloudwatch", "--interval", "1s", "--leader-elect", "kubernetes",
		"--kubeconfig", srv.Kubeconfig, "--lease-namespace", "kube-system"}

	t.Run("follows while another controller holds the Lease", func(t *testing.T) {
		other, secs, now := "other-host_1", int32(15), metav1.NewMicroTime(time.Now())
		if _, err := leases.Create(context.Background(), &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: leaseName},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &other, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating the Lease held by another controller: %v", err)
		}
		stop := make(chan struct{})
		time.AfterFunc(3*time.Second, func() { close(stop) })
		errOut, code := runUntil(t, stop, args...)
		if code != ExitOK {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
		if reconciled.MatchString(errOut) || strings.Contains(errOut, "leading") {
			t.Errorf("spotmax run acted while another controller held the Lease:\n%s", errOut)
		}
		if !strings.Contains(errOut, "other-host_1") {
			t.Errorf("the log does not name the leader it follows:\n%s", errOut)
		}
		if err := leases.Delete(context.Background(), leaseName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("leads and releases the Lease on shutdown", func(t *testing.T) {
		stop := make(chan struct{})
		go func() {
			defer close(stop)
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				l, err := leases.Get(context.Background(), leaseName, metav1.GetOptions{})
				if err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == self {
					time.Sleep(1500 * time.Millisecond) // at least one reconcile
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		errOut, code := runUntil(t, stop, args...)
		if code != ExitOK {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
		if !reconciled.MatchString(errOut) {
			t.Errorf("spotmax run did not reconcile as the leader:\n%s", errOut)
		}
		l, err := leases.Get(context.Background(), leaseName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("reading the Lease: %v", err)
		}
		if h := l.Spec.HolderIdentity; h != nil && *h != "" {
			t.Errorf("Lease holder after shutdown = %q, want it released", *h)
		}
	})
}
