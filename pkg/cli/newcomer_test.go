package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/internal/syncbuf"
)

// syncBuffer is a buffer safe for concurrent writers and the reading test.
type syncBuffer = syncbuf.Buffer

// newcomer runs the real binary in a clean environment: the simulated region's endpoint and
// dummy credentials, no shared AWS configuration, no instance metadata.
type newcomer struct {
	t   *testing.T
	t0  time.Time
	bin string
	env []string
}

func (n *newcomer) run(ctx context.Context, args ...string) binResult {
	n.t.Helper()
	cmd := exec.CommandContext(ctx, n.bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Env = &out, &errOut, n.env
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return binResult{out.String(), errOut.String(), code}
}

// must runs a command of the session and fails the test when it does not exit 0.
func (n *newcomer) must(ctx context.Context, args ...string) string {
	n.t.Helper()
	r := n.run(ctx, args...)
	n.t.Logf("[%s] $ spotmax %s\n%s%s", time.Since(n.t0).Round(time.Second), strings.Join(args, " "), r.stdout, r.stderr)
	if r.code != 0 {
		n.t.Fatalf("spotmax %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// start runs a long-lived command; the returned function stops it with SIGTERM and waits.
func (n *newcomer) start(ctx context.Context, stdout, stderr *syncBuffer, args ...string) (stop func() error) {
	n.t.Helper()
	cmd := exec.CommandContext(ctx, n.bin, args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = stdout, stderr, n.env
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("starting spotmax %s: %v", strings.Join(args, " "), err)
	}
	var once sync.Once
	var werr error
	stop = func() error {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			werr = cmd.Wait()
		})
		return werr
	}
	n.t.Cleanup(func() { _ = stop() })
	return stop
}

// TestNewcomerSession is README.md's "Try it" section, run as a newcomer runs it, with the real
// binary against `spotmax sim serve --scenario demo` on the wall clock: tag the group, list it,
// look at its instances, set up the interruption events, run the controller, interrupt a spot
// instance, and see the data volume carried over to the replacement, the replacement in
// `spotmax history`, and a realised saving in `spotmax savings`.
func TestNewcomerSession(t *testing.T) {
	t0 := time.Now()
	bin := buildSpotmax(t)
	t.Logf("built spotmax in %s", time.Since(t0).Round(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	n := &newcomer{t: t, t0: time.Now(), bin: bin, env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none"),
		"AWS_EC2_METADATA_DISABLED=true"}}

	// bin/spotmax sim serve --scenario demo & — it prints the export line.
	var simOut, simErr syncBuffer
	n.start(ctx, &simOut, &simErr, "sim", "serve", "--scenario", "demo", "--addr", "127.0.0.1:0")
	var export string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		// Two pipes: the banner on stderr may be copied after the export line on stdout.
		if line, _, ok := strings.Cut(simOut.String(), "\n"); ok && strings.Contains(simErr.String(), "serving at") {
			export = line
			break
		}
	}
	if !strings.HasPrefix(export, "export ") {
		t.Fatalf("sim serve printed no export line: %q\n%s", simOut.String(), simErr.String())
	}
	if !strings.Contains(simErr.String(), "time scale 1x") {
		t.Errorf("sim serve --scenario demo does not run on the wall clock:\n%s", simErr.String())
	}
	endpoint := ""
	for _, kv := range strings.Fields(strings.TrimPrefix(export, "export ")) {
		n.env = append(n.env, kv)
		if v, ok := strings.CutPrefix(kv, "AWS_ENDPOINT_URL="); ok {
			endpoint = v
		}
	}

	// The scenario's groups launch their instances.
	var status struct {
		Instances []instanceStatus `json:"instances"`
	}
	waitFor := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(limit); !cond(); time.Sleep(time.Second) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s\nsim serve:\n%s", what, limit, simErr.String())
			}
		}
		t.Logf("[%s] %s", time.Since(n.t0).Round(time.Second), what)
	}
	waitFor("three web instances running", 60*time.Second, func() bool {
		r := n.run(ctx, "group", "status", "web", "-o", "json")
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &status) != nil {
			return false
		}
		running := 0
		for _, in := range status.Instances {
			if in.State == "running" && in.DataVolume != "" {
				running++
			}
		}
		return running == 3
	})

	n.must(ctx, "group", "tag", "web", "--guarantee-living-mins", "50", "--yes")
	if out := n.must(ctx, "group", "list", "-o", "json"); !strings.Contains(out, `"name": "web"`) {
		t.Fatalf("group list does not show web:\n%s", out)
	}
	out := n.must(ctx, "group", "status", "web")
	if !strings.Contains(out, "config: ") || strings.Contains(out, "NOT MANAGED") {
		t.Errorf("group status of the tagged group:\n%s", out)
	}
	// One clock: a fresh instance is seconds old, with most of its 50-minute lifetime left.
	if err := json.Unmarshal([]byte(n.must(ctx, "group", "status", "web", "-o", "json")), &status); err != nil {
		t.Fatal(err)
	}
	old := status.Instances[0]
	if old.AgeSeconds > 120 || old.LifetimeLeftSeconds == nil || *old.LifetimeLeftSeconds < 45*60 {
		t.Errorf("instance %s: age %ds, lifetime left %v: not the wall clock's", old.ID, old.AgeSeconds, old.LifetimeLeftSeconds)
	}
	if old.Market != "spot" || old.DataVolume == "" {
		t.Fatalf("instance %s is %s with data volume %q", old.ID, old.Market, old.DataVolume)
	}

	// spotmax setup events --yes, then spotmax run --queue-url QUEUE &.
	out = n.must(ctx, "setup", "events", "--yes")
	_, queue, ok := strings.Cut(out, "queue URL: ")
	queue = strings.TrimSpace(queue)
	if !ok || queue == "" {
		t.Fatalf("setup events printed no queue URL:\n%s", out)
	}
	var runOut, runErr syncBuffer
	stopRun := n.start(ctx, &runOut, &runErr, "run", "--queue-url", queue, "--interval", "5s")
	waitFor("spotmax run to start", 30*time.Second, func() bool { return strings.Contains(runErr.String(), "spotmax controller starting") })

	// A spot interruption, through the simulator's control API.
	resp, err := http.Post(endpoint+"/_sim/instances/"+old.ID+"/interrupt", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("interrupting %s: HTTP %d", old.ID, resp.StatusCode)
	}
	// The data volume is carried over: attached to a running member that is not the old one.
	var carrier string
	waitFor("the data volume "+old.DataVolume+" on the replacement", 100*time.Second, func() bool {
		r := n.run(ctx, "group", "status", "web", "-o", "json")
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &status) != nil {
			return false
		}
		for _, in := range status.Instances {
			if in.ID != old.ID && in.DataVolume == old.DataVolume && in.State == "running" && in.LifecycleState == "InService" {
				carrier = in.ID
				return !in.DataVolumeDeleteOnTermination
			}
		}
		return false
	})
	// ... and the replacement finished (the old instance terminated, the journal cleared).
	waitFor("spotmax run to report the replacement done", 60*time.Second, func() bool {
		return strings.Contains(runErr.String(), "msg=replaced") && strings.Contains(runErr.String(), "new="+carrier)
	})
	if err := stopRun(); err != nil {
		t.Errorf("spotmax run did not stop cleanly on SIGTERM: %v\n%s", err, runErr.String())
	}
	if strings.Contains(runErr.String(), "level=ERROR") {
		t.Errorf("spotmax run logged errors:\n%s", runErr.String())
	}

	// spotmax history shows the replacement: its action record and its counts.
	out = n.must(ctx, "history", "--group", "web", "--since", "1h", "--period", "1m")
	for _, want := range []string{old.ID, carrier, "interruption", "succeeded", "spotmax run (", "ReplacementSucceeded: 1 event", "VolumeMoved: 1 event"} {
		if !strings.Contains(out, want) {
			t.Errorf("spotmax history does not show %q:\n%s", want, out)
		}
	}
	var hist historyJSON
	if err := json.Unmarshal([]byte(n.must(ctx, "history", "--instance", old.ID, "--since", "1h", "-o", "json")), &hist); err != nil {
		t.Fatal(err)
	}
	if len(hist.Actions) != 1 || hist.Actions[0].Replacement != carrier || hist.Actions[0].Volume != old.DataVolume ||
		hist.Actions[0].Reason != "interruption" || hist.Actions[0].Result != "succeeded" || hist.Actions[0].OldLaunched == nil {
		t.Errorf("history --instance %s actions = %+v", old.ID, hist.Actions)
	}

	// spotmax savings prints a realised saving.
	out = n.must(ctx, "savings", "--since", "1h")
	if !strings.Contains(out, "group web") || !strings.Contains(out, "saved $") {
		t.Errorf("spotmax savings:\n%s", out)
	}
	var rep struct {
		Groups []struct {
			Group string `json:"group"`
		} `json:"groups"`
		Total struct {
			Hours        float64 `json:"hours"`
			Cost         float64 `json:"cost_usd"`
			OnDemandCost float64 `json:"on_demand_cost_usd"`
			Saved        float64 `json:"saved_usd"`
		} `json:"total"`
	}
	if err := json.Unmarshal([]byte(n.must(ctx, "savings", "--since", "1h", "-o", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Groups) != 1 || rep.Groups[0].Group != "web" || rep.Total.Hours <= 0 || rep.Total.Saved <= 0 ||
		rep.Total.Cost >= rep.Total.OnDemandCost {
		t.Errorf("savings report = %+v", rep)
	}
}
