package agent_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spotmax/spotmax/pkg/blockdev/blockdevtest"
)

// userData runs step 2 of scripts/user-data-example.sh (the data volume of a first launch; the
// agent counts as installed) with dev linked as the group's device and mountPath as
// persistence_mount_path, and returns its output.
func userData(t *testing.T, ctx context.Context, dev, mountPath string, holdSecs int) (string, error) {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "..", "..", "scripts", "user-data-example.sh")
	link := filepath.Join(t.TempDir(), "sdf")
	if err := os.Symlink(dev, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(os.Environ(), "AGENT_INSTALLED=1", "DATA_DEVICES="+link, "MOUNT_PATH="+mountPath,
		"BLANK_HOLD_SECS="+strconv.Itoa(holdSecs))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// userDataVolumes runs the same step for several data volumes (DATA_VOLUMES): each of devs linked
// as its group device, mounted at the path of the same position.
func userDataVolumes(t *testing.T, ctx context.Context, devs, paths []string, holdSecs int) (string, error) {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "..", "..", "scripts", "user-data-example.sh")
	var entries []string
	for i, dev := range devs {
		link := filepath.Join(t.TempDir(), "sd"+string(rune('f'+i)))
		if err := os.Symlink(dev, link); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, link+":"+paths[i])
	}
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(os.Environ(), "AGENT_INSTALLED=1", "DATA_VOLUMES="+strings.Join(entries, " "),
		"BLANK_HOLD_SECS="+strconv.Itoa(holdSecs))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func fsType(t *testing.T, dev string) string {
	t.Helper()
	out, _ := exec.Command("blkid", "-p", "-o", "value", "-s", "TYPE", dev).Output()
	return strings.TrimSpace(string(out))
}

func mountSource(dir string) string {
	out, err := exec.Command("findmnt", "-rno", "SOURCE", "--mountpoint", dir).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// TestUserDataExample runs the shipped user-data script's data-volume step on real loop devices:
// a first launch's blank volume is formatted and mounted, a volume with a file system is mounted
// and never formatted, a volume the agent holds for the pool is not formatted while held, and
// nothing is touched once the agent has mounted a pooled volume.
func TestUserDataExample(t *testing.T) {
	blockdevtest.Require(t)

	t.Run("blank volume is formatted and mounted", func(t *testing.T) {
		l := blockdevtest.NewLoop(t, 64, false)
		dir := t.TempDir()
		t.Cleanup(func() { blockdevtest.UnmountPath(t, dir) })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := userData(t, ctx, l.Dev, dir, 0); err != nil {
			t.Fatalf("user data: %v\n%s", err, out)
		}
		if got := fsType(t, l.Dev); got != "ext4" {
			t.Errorf("file system on %s = %q, want ext4", l.Dev, got)
		}
		if got := mountSource(dir); got != l.Dev {
			t.Errorf("%s is mounted from %q, want %s", dir, got, l.Dev)
		}
	})

	t.Run("a file system is kept", func(t *testing.T) {
		l := blockdevtest.NewLoop(t, 64, true)
		seed := t.TempDir()
		blockdevtest.Mount(t, l.Dev, seed)
		if err := os.WriteFile(filepath.Join(seed, "marker"), []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
		blockdevtest.UnmountPath(t, seed)
		dir := t.TempDir()
		t.Cleanup(func() { blockdevtest.UnmountPath(t, dir) })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := userData(t, ctx, l.Dev, dir, 0); err != nil {
			t.Fatalf("user data: %v\n%s", err, out)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "marker")); err != nil || string(b) != "data" {
			t.Errorf("marker after the user data = %q, %v; want the volume's data kept", b, err)
		}
	})

	t.Run("not formatted while the agent holds it", func(t *testing.T) {
		l := blockdevtest.NewLoop(t, 64, false)
		// The agent's blank hold: the device opened with O_EXCL (pkg/agent/pool.go).
		fd, err := unix.Open(l.Dev, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("holding %s: %v", l.Dev, err)
		}
		held := true
		release := func() {
			if held {
				held = false
				unix.Close(fd)
			}
		}
		t.Cleanup(release)
		dir := t.TempDir()
		t.Cleanup(func() { blockdevtest.UnmountPath(t, dir) })
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		done := make(chan error, 1)
		var out string
		go func() {
			var err error
			out, err = userData(t, ctx, l.Dev, dir, 0)
			done <- err
		}()
		time.Sleep(3 * time.Second)
		if got := fsType(t, l.Dev); got != "" {
			t.Errorf("%s was formatted (%s) while the agent held it", l.Dev, got)
		}
		if got := mountSource(dir); got != "" {
			t.Errorf("%s mounted from %s while the agent held the device", dir, got)
		}
		release()
		if err := <-done; err != nil {
			t.Fatalf("user data: %v\n%s", err, out)
		}
		if got := mountSource(dir); got != l.Dev || fsType(t, l.Dev) != "ext4" {
			t.Errorf("after the hold: %s mounted from %q (fs %q), want %s formatted", dir, got, fsType(t, l.Dev), l.Dev)
		}
	})

	t.Run("nothing is touched once the agent mounted a pooled volume", func(t *testing.T) {
		pooled := blockdevtest.NewLoop(t, 64, true)
		fresh := blockdevtest.NewLoop(t, 64, false)
		dir := t.TempDir()
		blockdevtest.Mount(t, pooled.Dev, dir)
		t.Cleanup(func() { blockdevtest.UnmountPath(t, dir) })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := userData(t, ctx, fresh.Dev, dir, 0); err != nil {
			t.Fatalf("user data: %v\n%s", err, out)
		}
		if got := fsType(t, fresh.Dev); got != "" {
			t.Errorf("the fresh volume %s was formatted (%s) though a pooled volume is mounted", fresh.Dev, got)
		}
		if got := mountSource(dir); got != pooled.Dev {
			t.Errorf("%s mounted from %q, want the pooled %s", dir, got, pooled.Dev)
		}
	})

	t.Run("two data volumes at their own paths", func(t *testing.T) {
		// data: a first launch's blank volume, formatted once the agent's hold ends; log: a
		// volume with a file system, mounted as it is.
		data := blockdevtest.NewLoop(t, 64, false)
		logv := blockdevtest.NewLoop(t, 64, true)
		fd, err := unix.Open(data.Dev, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("holding %s: %v", data.Dev, err)
		}
		held := true
		release := func() {
			if held {
				held = false
				unix.Close(fd)
			}
		}
		t.Cleanup(release)
		base := t.TempDir()
		paths := []string{filepath.Join(base, "data"), filepath.Join(base, "log")}
		for _, p := range paths {
			t.Cleanup(func() { blockdevtest.UnmountPath(t, p) })
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		done := make(chan error, 1)
		var out string
		go func() {
			var err error
			out, err = userDataVolumes(t, ctx, []string{data.Dev, logv.Dev}, paths, 0)
			done <- err
		}()
		deadline := time.Now().Add(20 * time.Second)
		for mountSource(paths[1]) == "" && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if got := mountSource(paths[1]); got != logv.Dev {
			t.Errorf("%s mounted from %q, want the log volume %s while the data volume is held", paths[1], got, logv.Dev)
		}
		if got := fsType(t, data.Dev); got != "" || mountSource(paths[0]) != "" {
			t.Errorf("the held data volume %s was formatted (%q) or mounted", data.Dev, got)
		}
		release()
		if err := <-done; err != nil {
			t.Fatalf("user data: %v\n%s", err, out)
		}
		if got := mountSource(paths[0]); got != data.Dev || fsType(t, data.Dev) != "ext4" {
			t.Errorf("after the hold: %s mounted from %q (fs %q), want %s formatted", paths[0], got, fsType(t, data.Dev), data.Dev)
		}
		if got := mountSource(paths[1]); got != logv.Dev {
			t.Errorf("%s mounted from %q, want %s", paths[1], got, logv.Dev)
		}
	})
}
