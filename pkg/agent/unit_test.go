package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/blockdev/blockdevtest"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/internal/testassets"
)

// These tests run the real spotmax-agent binary the way systemd would run it under the shipped
// unit, scripts/spotmax-agent.service, as far as mount namespaces go (issue 11, case 7): a unit
// with PrivateTmp=, ProtectHome= or any other namespace-creating option runs the agent in a
// namespace of its own, whose mounts the host never sees.

// moduleRoot is the top of the module, from this file's place in it.
func moduleRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot tell where the test's source is")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// unitOption is one Key=Value line of a unit's [Service] section.
type unitOption struct {
	key, value string
	line       int
}

// parseService returns the options of the [Service] section of a systemd unit file, in order
// (systemd.syntax(7): comments start with # or ;, a trailing backslash continues a line).
func parseService(t *testing.T, text string) []unitOption {
	t.Helper()
	var out []unitOption
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	n, pending, pendingLine := 0, "", 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";")) {
			continue
		}
		if pending == "" {
			pendingLine = n
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending += cont + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("unit line %d: %q is not Key=Value", pendingLine, line)
		}
		if section == "[Service]" {
			out = append(out, unitOption{strings.TrimSpace(k), strings.TrimSpace(v), pendingLine})
		}
	}
	return out
}

// falsy reports whether a unit boolean (or the reset value "") is off.
func falsy(v string) bool {
	switch strings.ToLower(v) {
	case "", "0", "no", "false", "off", "n":
		return true
	}
	return false
}

// Mount-namespace semantics of [Service] options, from systemd.exec(5). Each namespace option
// maps to whether its value creates a mount namespace; options that never do are listed too.
// An option in neither list fails the test: a new one must be classified before it ships.
var (
	namespaceOptions = map[string]func(v string) bool{
		"PrivateTmp": func(v string) bool { return !falsy(v) }, "PrivateDevices": func(v string) bool { return !falsy(v) },
		"PrivateMounts": func(v string) bool { return !falsy(v) }, "PrivateNetwork": func(v string) bool { return !falsy(v) },
		"PrivateIPC": func(v string) bool { return !falsy(v) }, "PrivateUsers": func(v string) bool { return !falsy(v) },
		"PrivatePIDs": func(v string) bool { return !falsy(v) }, "ProtectSystem": func(v string) bool { return !falsy(v) },
		"ProtectHome": func(v string) bool { return !falsy(v) }, "ProtectKernelTunables": func(v string) bool { return !falsy(v) },
		"ProtectKernelModules": func(v string) bool { return !falsy(v) }, "ProtectKernelLogs": func(v string) bool { return !falsy(v) },
		"ProtectControlGroups": func(v string) bool { return !falsy(v) }, "ProtectHostname": func(v string) bool { return !falsy(v) },
		"ProtectProc": func(v string) bool { return v != "" && v != "default" },
		"ProcSubset":  func(v string) bool { return v != "" && v != "all" },
		"MountAPIVFS": func(v string) bool { return !falsy(v) }, "BindLogSockets": func(v string) bool { return !falsy(v) },
		"DynamicUser":    func(v string) bool { return !falsy(v) },
		"ReadWritePaths": func(v string) bool { return v != "" }, "ReadOnlyPaths": func(v string) bool { return v != "" },
		"InaccessiblePaths": func(v string) bool { return v != "" }, "ExecPaths": func(v string) bool { return v != "" },
		"NoExecPaths": func(v string) bool { return v != "" }, "TemporaryFileSystem": func(v string) bool { return v != "" },
		"BindPaths": func(v string) bool { return v != "" }, "BindReadOnlyPaths": func(v string) bool { return v != "" },
		"RootDirectory": func(v string) bool { return v != "" }, "RootImage": func(v string) bool { return v != "" },
		"MountImages": func(v string) bool { return v != "" }, "ExtensionImages": func(v string) bool { return v != "" },
		"ExtensionDirectories": func(v string) bool { return v != "" },
		// MountFlags=shared alone leaves the service in the host's namespace; slave or private
		// ask for one.
		"MountFlags": func(v string) bool { return v != "" && v != "shared" },
	}
	plainOptions = map[string]bool{
		"Type": true, "Environment": true, "EnvironmentFile": true, "ExecStart": true, "ExecStartPre": true,
		"ExecStartPost": true, "ExecStop": true, "ExecStopPost": true, "ExecReload": true, "Restart": true,
		"RestartSec": true, "KillSignal": true, "KillMode": true, "TimeoutStopSec": true, "TimeoutStartSec": true,
		"TimeoutSec": true, "RuntimeDirectory": true, "RuntimeDirectoryPreserve": true, "RuntimeDirectoryMode": true,
		"User": true, "Group": true, "NoNewPrivileges": true, "MemoryMax": true, "MemoryHigh": true, "CPUQuota": true,
		"TasksMax": true, "LockPersonality": true, "RestrictRealtime": true, "RestrictSUIDSGID": true,
		"SystemCallArchitectures": true, "Nice": true, "StandardOutput": true, "StandardError": true,
		"SyslogIdentifier": true, "LimitNOFILE": true, "UMask": true, "OOMScoreAdjust": true,
	}
)

// mountSemantics is how systemd would run a unit's processes as far as mounts go.
type mountSemantics struct {
	// namespace is set when the unit gives the service a mount namespace of its own; because
	// lists the options that do.
	namespace bool
	because   []string
	// propagation is the namespace's final propagation: systemd makes / a recursive slave of
	// the host's first (so that its own set-up mounts do not leak out), then applies
	// MountFlags= (default: slave).
	propagation string
	env         []string
}

func semanticsOf(t *testing.T, opts []unitOption) mountSemantics {
	t.Helper()
	s := mountSemantics{propagation: "slave"}
	for _, o := range opts {
		if creates, ok := namespaceOptions[o.key]; ok {
			if creates(o.value) {
				s.namespace = true
				s.because = append(s.because, fmt.Sprintf("%s=%s (line %d)", o.key, o.value, o.line))
			}
			if o.key == "MountFlags" && o.value != "" {
				s.propagation = o.value
			}
			continue
		}
		if !plainOptions[o.key] {
			t.Fatalf("unit line %d: %s= is not classified: add it to namespaceOptions or plainOptions of %s after reading systemd.exec(5)",
				o.line, o.key, "pkg/agent/unit_test.go")
		}
		if o.key == "Environment" {
			s.env = append(s.env, strings.Fields(strings.Trim(o.value, `"`))...)
		}
	}
	switch s.propagation {
	case "shared", "slave", "private":
	default:
		t.Fatalf("MountFlags=%s: systemd takes shared, slave or private", s.propagation)
	}
	return s
}

var (
	agentBinOnce sync.Once
	agentBinDir  string
	agentBinErr  error
)

// TestMain removes the agent binary built for these tests.
func TestMain(m *testing.M) {
	m.Run()
	if agentBinDir != "" {
		_ = os.RemoveAll(agentBinDir)
	}
}

// buildAgent builds cmd/spotmax-agent once per test binary.
func buildAgent(t *testing.T) string {
	t.Helper()
	root := moduleRoot(t)
	agentBinOnce.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if agentBinDir, agentBinErr = os.MkdirTemp("", "spotmax-agent-test-"); agentBinErr != nil {
			return
		}
		cmd := exec.Command(gobin, "build", "-o", filepath.Join(agentBinDir, "spotmax-agent"), "./cmd/spotmax-agent")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			agentBinErr = fmt.Errorf("go build ./cmd/spotmax-agent: %v: %s", err, out)
		}
	})
	if agentBinErr != nil {
		t.Fatal(agentBinErr)
	}
	return filepath.Join(agentBinDir, "spotmax-agent")
}

// agentUnderUnit runs the agent binary with a unit's mount semantics on a member instance whose
// data volume (a loop device) is assigned to it, and reports whether the mount it made is
// visible to the test, which stands for the host. When the mount is visible it also retires the
// instance and reports whether the agent's unmount left the host's mount table.
func agentUnderUnit(t *testing.T, s mountSemantics) (visible, unmountVisible bool) {
	t.Helper()
	blockdevtest.Require(t)
	if _, err := exec.LookPath("unshare"); err != nil && s.namespace {
		testassets.Missing(t, "unshare is not installed (util-linux)")
	}
	bin := buildAgent(t)
	env, in := simInstance(t, true, map[string]string{groupconfig.TagGroup: "g"})
	r := env.Region()
	data := blockdevtest.NewLoop(t, 16, true)
	sum := blockdevtest.WriteData(t, data.Dev, 64<<10)
	path := filepath.Join(t.TempDir(), "data")
	t.Cleanup(func() { blockdevtest.UnmountPath(t, path) })
	byID := blockdevtest.NewByIDDir(t)
	const vol = "vol-0123456789abcdef7"
	byID.Attach(t, vol, data.Dev)
	setTag(t, env, in.ID, groupconfig.StateVolume, vol)
	setTag(t, env, in.ID, groupconfig.StateMountPath, path)

	args := []string{bin}
	if s.namespace {
		// What systemd does: a new mount namespace, / made a recursive slave of the host's,
		// then the unit's MountFlags= propagation.
		args = []string{"unshare", "--mount", "--propagation", "slave", "--", "/bin/sh", "-c",
			`mount --make-r` + s.propagation + ` / && exec "$0"`, bin}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(append(os.Environ(), s.env...),
		"SPOTMAX_IMDS_ENDPOINT="+r.IMDSURL(in.ID), "AWS_ENDPOINT_URL="+env.URL(), "AWS_ACCESS_KEY_ID=agent",
		"AWS_SECRET_ACCESS_KEY=secret", "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		"SPOTMAX_BY_ID_DIR="+byID.Dir, "SPOTMAX_STATE_DIR="+t.TempDir(), "SPOTMAX_CONSUL_MODE=off",
		"SPOTMAX_TAG_INTERVAL=100ms", "SPOTMAX_NOTICE_INTERVAL=50ms", "SPOTMAX_LOG_FORMAT=text")
	lb := &logBuffer{}
	cmd.Stdout, cmd.Stderr = lb, lb
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", strings.Join(args, " "), err)
	}
	t.Cleanup(func() {
		// The whole process group (unshare, sh, the agent); its namespace and the mounts
		// only it saw go with it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", lb.String())
		}
	})
	eventually(t, 20*time.Second, "the agent to mount the volume and report it", func() bool {
		return strings.Contains(lb.String(), `msg="data volume mounted"`) && tagOf(r, in.ID, groupconfig.StateVolumeMounted) == vol
	}, lb)
	if mountedAt(t, path) != data.Dev {
		return false, false
	}
	if got := blockdevtest.Checksum(t, path); got != sum {
		t.Errorf("the host sees %s at %s, but with checksum %s, want %s", data.Dev, path, got, sum)
	}
	setTag(t, env, in.ID, groupconfig.StateRetiring, "lifetime")
	eventually(t, 20*time.Second, "the agent to release the volume", func() bool {
		return tagOf(r, in.ID, groupconfig.StateVolumeReleased) == vol
	}, lb)
	return true, mountedAt(t, path) != ""
}

func readUnit(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "scripts", "spotmax-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestShippedUnitKeepsMountsOnTheHost(t *testing.T) {
	testassets.Root(t)
	s := semanticsOf(t, parseService(t, readUnit(t)))
	if s.namespace {
		t.Errorf("scripts/spotmax-agent.service gives the agent a mount namespace of its own (%s): its mounts would not reach the host",
			strings.Join(s.because, ", "))
	}
	visible, stillMounted := agentUnderUnit(t, s)
	if !visible {
		t.Fatalf("the agent mounted the data volume, but the host does not see it (unit semantics: %+v)", s)
	}
	if stillMounted {
		t.Errorf("the agent reported the volume released, but the host still has it mounted")
	}
}

// The check above can fail: the unit as it shipped before issue 11 hides the mount.
func TestUnitWithPrivateTmpHidesMounts(t *testing.T) {
	testassets.Root(t)
	old := strings.Replace(readUnit(t), "NoNewPrivileges=yes", "NoNewPrivileges=yes\nProtectHome=read-only\nPrivateTmp=yes", 1)
	s := semanticsOf(t, parseService(t, old))
	if !s.namespace || s.propagation != "slave" || len(s.because) != 2 {
		t.Fatalf("semantics of a unit with PrivateTmp=yes and ProtectHome=read-only = %+v, want a slave namespace because of both", s)
	}
	if visible, _ := agentUnderUnit(t, s); visible {
		t.Fatal("the agent's mount in a private namespace is visible to the host: the emulation of systemd's namespace is broken")
	}
	// MountFlags=shared does not make it visible either: the namespace is a slave of the host's.
	s.propagation = "shared"
	if visible, _ := agentUnderUnit(t, s); visible {
		t.Fatal("with MountFlags=shared on top of a namespace, the mount reached the host; systemd would not propagate it")
	}
}

func TestShippedUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testassets.Missing(t, "systemd-analyze is not installed (systemd)")
	}
	bin := buildAgent(t)
	lines := strings.Split(readUnit(t), "\n")
	found := false
	for i, l := range lines {
		if strings.HasPrefix(l, "ExecStart=") {
			if l != "ExecStart=/usr/local/bin/spotmax-agent" {
				t.Errorf("unit: %s, want ExecStart=/usr/local/bin/spotmax-agent (where install-agent.sh puts it)", l)
			}
			lines[i], found = "ExecStart="+bin, true
		}
	}
	if !found {
		t.Fatal("the unit has no ExecStart=")
	}
	unit := filepath.Join(t.TempDir(), "spotmax-agent.service")
	if err := os.WriteFile(unit, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, sa, "verify", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify of the shipped unit: %v\n%s", err, out)
	}
}
