package cli

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// Issue 13's small frictions, one test each.

// `spotmax group tag web --yes` with no tag flag enables the group with the defaults.
func TestGroupTagWithoutFlagsEnablesTheGroup(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "web", 1, nil)
	if _, errOut, code := run(t, "group", "tag", "web", "--yes"); code != 0 {
		t.Fatalf("group tag web --yes: exit %d: %s", code, errOut)
	}
	g, _ := e.Region().Group("web")
	if v, ok := g.Tag(groupconfig.TagGroup); !ok || v != "web" {
		t.Fatalf("group web has %s = %q after group tag --yes", groupconfig.TagGroup, v)
	}
	out, errOut, code := run(t, "group", "status", "web")
	if code != 0 || strings.Contains(out, "NOT MANAGED") || !strings.Contains(out, "config: ") {
		t.Errorf("group status after enabling: exit %d\n%s%s", code, out, errOut)
	}
}

// `group status` of a group without spotmax:group says it is not managed and shows no
// configuration.
func TestGroupStatusOfAnUnmanagedGroup(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "plain", 1, nil)
	out, errOut, code := run(t, "group", "status", "plain")
	if code != 0 || !strings.Contains(out, "NOT MANAGED") || strings.Contains(out, "config: ") {
		t.Errorf("group status of an unmanaged group: exit %d\n%s%s", code, out, errOut)
	}
}

// `spotmax demo` keeps the components' logs out of its timeline and prints them after it.
func TestDemoLogsAreKeptOutOfTheTimeline(t *testing.T) {
	d := newDeferredLog(slog.LevelInfo)
	var errOut bytes.Buffer
	d.logger.Info("replacement step done", "step", "launch")
	d.logger.Debug("below the level")
	if errOut.Len() != 0 {
		t.Fatal("a log line reached the terminal during the timeline")
	}
	d.dump(&errOut, false)
	if got := errOut.String(); !strings.Contains(got, "1 component log lines kept out of the timeline") || strings.Contains(got, "replacement step done") {
		t.Errorf("dump without --log-level debug: %q", got)
	}
	errOut.Reset()
	d.dump(&errOut, true)
	if got := errOut.String(); !strings.Contains(got, "replacement step done") || strings.Contains(got, "below the level") {
		t.Errorf("dump of all lines: %q", got)
	}
}

// An unreachable Kubernetes API server is reported as such, not as the AWS endpoint.
func TestUnreachableKubernetesIsNotAWS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://" + addr + "\n    insecure-skip-tls-verify: true\n" +
		"contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: x\n"
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL", "http://"+addr) // unreachable too: must not be what is blamed
	_, errOut, code := run(t, "drain", "node-1", "--kubeconfig", kc, "--grace-period", "1s", "--yes", "--no-cloudwatch")
	if code == 0 || strings.Contains(errOut, "AWS endpoint") || !strings.Contains(errOut, "cannot reach https://"+addr) {
		t.Errorf("drain against an unreachable API server: exit %d: %s", code, errOut)
	}
}

// Bad `spotmax replace` inputs are clear usage errors; --resume of a group that does not exist
// fails.
func TestReplaceFlagFrictions(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "web", 1, map[string]string{groupconfig.TagGroup: "web", groupconfig.TagPersistenceDev: "/dev/sdf"})
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"replace", "--group", "web", "--older-than", "-5m", "--yes"}, ExitUsage, "invalid --older-than -5m0s: want a positive age"},
		{[]string{"replace", "--group", "web", "--all", "--release-timeout", "-1s", "--yes"}, ExitUsage, "invalid --release-timeout -1s: must not be negative"},
		{[]string{"replace", "--resume", "--group", "nosuch", "--yes"}, ExitNotFound, "nosuch"},
	} {
		_, errOut, code := run(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("spotmax %s: exit %d (want %d): %s (want %q)", strings.Join(tc.args, " "), code, tc.code, errOut, tc.want)
		}
	}
}

// The simulator's port taken: a clear message, not "cannot reach the AWS endpoint".
func TestSimServePortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, errOut, code := run(t, "sim", "serve", "--addr", ln.Addr().String())
	if code == 0 || strings.Contains(errOut, "AWS endpoint") || !strings.Contains(errOut, "the port is in use") || !strings.Contains(errOut, ln.Addr().String()) {
		t.Errorf("sim serve on a taken port: exit %d: %s", code, errOut)
	}
	if DefaultSimAddr == "127.0.0.1:4566" {
		t.Errorf("the default simulator address is LocalStack's")
	}
}
