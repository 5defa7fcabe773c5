package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spotmax/spotmax/pkg/consul"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/imds"
	"github.com/spotmax/spotmax/pkg/metrics"
)

// Steps of a notice, in order.
const (
	stepRelay   = "relay"
	stepConsul  = "consul"
	stepPreStop = "pre-stop-hook"
	stepRelease = "release-volume"
	// stepRecord is the notice's metrics event, recorded once per notice (not a step of the
	// notice's handling: it is not logged as one).
	stepRecord = "record-event"
)

// noticeEvents are the metrics events of the notices that have one. The Auto Scaling
// termination and the retiring mark are the controller's doing, recorded by it.
var noticeEvents = map[imds.Kind]metrics.Name{
	imds.KindSpotInterruption: metrics.InterruptionReceived,
	imds.KindRebalance:        metrics.RebalanceReceived,
}

// handle acts on one notice: each step at most once per notice, recorded in the state dir so
// that a restarted agent does not repeat what it did. Every step is safe to cut short: the
// instance may die at any point of a notice.
func (a *agent) handle(ctx context.Context, n imds.Notice) {
	log := a.log.With("instance", a.id.InstanceID, "group", a.group, "notice", string(n.Kind), "action", n.Action)
	if !n.Time.IsZero() {
		log = log.With("at", n.Time.UTC().Format(time.RFC3339))
	}
	log.Info("notice received")
	st := a.loadState()
	done := func(step string) bool { return st.Done[n.Key()][step] != "" }
	mark := func(step string) {
		if st.Done[n.Key()] == nil {
			st.Done[n.Key()] = map[string]string{}
		}
		st.Done[n.Key()][step] = time.Now().UTC().Format(time.RFC3339Nano)
		a.saveState(st)
	}
	if name, ok := noticeEvents[n.Kind]; ok && a.metrics != nil && !done(stepRecord) {
		// Once per notice, across restarts of the agent too: CloudWatch would count it twice.
		a.record(ctx, metrics.Event{Name: name, Time: n.Seen, Fields: map[string]string{"action": n.Action}})
		mark(stepRecord)
	}
	acting := n.Kind != imds.KindRebalance || a.cfg.HandleRebalance
	type step struct {
		name string
		run  func(context.Context) error
	}
	var steps []step
	if acting && a.consul != nil {
		steps = append(steps, step{stepConsul, func(ctx context.Context) error { return a.withdrawConsul(ctx, log) }})
	}
	if n.Kind == imds.KindSpotInterruption || n.Kind == imds.KindRebalance {
		// Relayed whether or not the agent acts on it: the controller decides for the group.
		steps = append(steps, step{stepRelay, func(ctx context.Context) error { return a.relay(ctx, n) }})
	}
	if acting && a.cfg.PreStopHook != "" {
		steps = append(steps, step{stepPreStop, func(ctx context.Context) error {
			return a.runHook(ctx, "pre-stop hook", a.cfg.PreStopHook, n, "", a.mountPathForRelease())
		}})
	}
	if acting {
		steps = append(steps, step{stepRelease, func(ctx context.Context) error { return a.release(ctx, n, log) }})
	}
	for _, s := range steps {
		if done(s.name) {
			log.Info("notice step already done", "step", s.name)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		start := time.Now()
		err := s.run(ctx)
		took := time.Since(start).Round(time.Millisecond).String()
		if err != nil {
			log.Error("notice step failed", "step", s.name, "took", took, "error", err)
			continue
		}
		log.Info("notice step done", "step", s.name, "took", took)
		mark(s.name)
	}
	if !acting {
		log.Info("rebalance recommendation relayed, not acted on (--handle-rebalance is off)")
	}
}

// withdrawConsul takes the instance's services out of the local Consul agent.
// It records ConsulDeregistered when it took services out (nothing left to withdraw, e.g.
// after the controller's own deregistration, is not counted again).
func (a *agent) withdrawConsul(ctx context.Context, log *slog.Logger) error {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	res, err := a.consul.Withdraw(cctx)
	if errors.Is(err, consul.ErrUnreachable) {
		return fmt.Errorf("no Consul agent answers at %s (use --consul-mode off on instances without one): %w", a.consul.Address(), err)
	}
	if err != nil {
		return err
	}
	log.Info("consul services withdrawn", "event", "consul-deregistered", "consul_agent", res.Address, "mode", string(res.Mode), "services", res.Services)
	if len(res.Services) > 0 {
		a.record(ctx, metrics.Event{Name: metrics.ConsulDeregistered, Duration: time.Since(start),
			Fields: map[string]string{"mode": string(res.Mode)}})
	}
	return nil
}

// relay records the notice on the instance (groupconfig.StateNotice) for a controller without
// an EventBridge queue. A spot interruption is never overwritten by a later recommendation.
func (a *agent) relay(ctx context.Context, n imds.Notice) error {
	if n.Kind == imds.KindRebalance {
		if cur, ok, err := a.tags.Tag(ctx, groupconfig.StateNotice); err == nil && ok {
			if relayed, err := groupconfig.ParseRelayedNotice(cur); err == nil && !relayed.Rebalance() {
				return nil
			}
		}
	}
	return a.setTags(ctx, map[string]string{groupconfig.StateNotice: n.Relay().String()})
}

// runHook runs a shell command with the notice in its environment, killing its whole process
// group when it runs over the hook timeout.
func (a *agent) runHook(ctx context.Context, name, command string, n imds.Notice, volume, mountPath string) error {
	hctx, cancel := context.WithTimeout(ctx, a.cfg.HookTimeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, "/bin/sh", "-c", command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	t := n.Time
	if t.IsZero() {
		t = n.Seen
	}
	cmd.Env = append(os.Environ(),
		"SPOTMAX_NOTICE_KIND="+string(n.Kind), "SPOTMAX_NOTICE_ACTION="+n.Action,
		"SPOTMAX_NOTICE_TIME="+t.UTC().Format(time.RFC3339), "SPOTMAX_INSTANCE_ID="+a.id.InstanceID,
		"SPOTMAX_GROUP="+a.group, "SPOTMAX_MOUNT_PATH="+mountPath, "SPOTMAX_VOLUME_ID="+volume)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	tail := out.String()
	if len(tail) > 2048 {
		tail = "…" + tail[len(tail)-2048:]
	}
	if err != nil {
		if hctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("%s %q ran over %v and was killed: %s", name, command, a.cfg.HookTimeout, strings.TrimSpace(tail))
		}
		return fmt.Errorf("%s %q: %w: %s", name, command, err, strings.TrimSpace(tail))
	}
	a.log.Info(name+" done", "command", command, "output", strings.TrimSpace(tail))
	return nil
}

// state is what the agent did, kept across its restarts.
type state struct {
	// Done maps a notice key to its steps done (step → time).
	Done map[string]map[string]string `json:"done"`
}

func (a *agent) statePath() string {
	return filepath.Join(a.cfg.StateDir, "state-"+a.id.InstanceID+".json")
}

func (a *agent) loadState() *state {
	st := &state{Done: map[string]map[string]string{}}
	b, err := os.ReadFile(a.statePath())
	if err == nil {
		if err := json.Unmarshal(b, st); err != nil {
			a.log.Warn("ignoring an unreadable state file", "file", a.statePath(), "error", err)
			st = &state{Done: map[string]map[string]string{}}
		}
	}
	if st.Done == nil {
		st.Done = map[string]map[string]string{}
	}
	return st
}

func (a *agent) saveState(st *state) {
	b, _ := json.Marshal(st)
	err := os.MkdirAll(a.cfg.StateDir, 0o700)
	if err == nil {
		tmp := a.statePath() + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, a.statePath())
		}
	}
	if err != nil {
		a.log.Warn("cannot record the notice steps done; a restarted agent would repeat them", "dir", a.cfg.StateDir, "error", err)
	}
}
