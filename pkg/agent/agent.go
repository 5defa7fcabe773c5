// Package agent is spotmax-agent, the daemon on each instance of a spotmax group. It checks
// that the instance belongs to a group (the spotmax:group tag), mounts the data volume that the
// replacement workflow moved to it, and watches for notices that the instance is about to go
// away (spot interruption, rebalance recommendation, Auto Scaling termination, the workflow's
// retiring mark). On a notice it takes the instance out of Consul, runs the configured hooks,
// unmounts the data volume cleanly and marks it released so the workflow can move it, and relays
// the notice in a tag for a controller without an EventBridge queue.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spotmax/spotmax/pkg/blockdev"
	"github.com/spotmax/spotmax/pkg/consul"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/imds"
)

// agent is the state of one run.
type agent struct {
	cfg     Config
	log     *slog.Logger
	imds    *imds.Client
	id      imds.Identity
	group   string
	tags    tagReader
	ec2     *lazyEC2
	mounter *blockdev.Mounter
	locator *blockdev.Locator
	consul  *consul.Agent // nil when off
	metrics *agentMetrics // nil when off

	// volMu serializes everything that touches the data volume's mount: the remount and the
	// release never run at once.
	volMu sync.Mutex
	// leaving is set once a notice was acted on: from then on the volume is not mounted again.
	leaving bool
	// mounted maps each mount path to the data volume this run mounted (or found mounted) there.
	mounted map[string]string
	// listed are the list-valued progress tags this run wrote (addToTagList), by key.
	listed map[string][]string
}

// Run runs the agent until ctx ends. It returns nil at once, after one log line, for an
// instance that is not a member of a spotmax group: the same image or user data can be used
// everywhere, and a service that exits 0 is not restarted by systemd.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return fmt.Errorf("configuring spotmax-agent: %w", err)
	}
	a := &agent{cfg: cfg, log: cfg.Log,
		imds:    imds.New(imds.Options{Endpoint: cfg.IMDSEndpoint}),
		mounter: &blockdev.Mounter{Options: cfg.MountOptions},
		locator: &blockdev.Locator{ByIDDir: cfg.ByIDDir, SysBlockDir: cfg.SysBlockDir}}
	stopped := func(err error) bool {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			a.log.Info("spotmax-agent stopped before it started", "reason", err.Error())
			return true
		}
		return false
	}
	if err := a.identify(ctx); err != nil {
		if stopped(err) {
			return nil
		}
		return err
	}
	if err := a.membership(ctx); err != nil {
		if stopped(err) {
			return nil
		}
		if errors.Is(err, ErrNotMember) {
			a.log.Info("not a member of a spotmax group, nothing to do: exiting", "instance", a.id.InstanceID,
				"reason", err.Error(), "tags", a.tags.Source())
			return nil
		}
		return err
	}
	if cfg.ConsulMode != "off" {
		a.consul, err = consul.NewAgent(consul.Options{Address: cfg.ConsulAddr, Token: cfg.ConsulToken,
			Mode: consul.Mode(cfg.ConsulMode), Reason: "spotmax-agent: instance " + a.id.InstanceID + " is going away"})
		if err != nil {
			return fmt.Errorf("configuring Consul: %w", err)
		}
	}
	if a.metrics, err = a.startMetrics(ctx); err != nil {
		return err
	}
	a.log.Info("spotmax-agent started", append([]any{"instance", a.id.InstanceID, "group", a.group, "region", a.id.Region,
		"az", a.id.AZ, "tags", a.tags.Source()}, cfg.logAttrs()...)...)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	notices := make(chan imds.Notice, 8)
	var wg sync.WaitGroup
	wg.Add(4)
	go func() {
		defer wg.Done()
		w := &imds.Watcher{Sources: a.sources(), Log: a.log, Prefetch: a.imds.Prefetch}
		_ = w.Run(ctx, notices)
	}()
	go func() {
		defer wg.Done()
		a.announce(ctx)
	}()
	go func() {
		defer wg.Done()
		a.holdBlank(ctx)
	}()
	go func() {
		defer wg.Done()
		a.remountLoop(ctx)
	}()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			a.metrics.close(a)
			a.log.Info("spotmax-agent stopped", "instance", a.id.InstanceID)
			return nil
		case n := <-notices:
			a.handle(ctx, n)
		}
	}
}

// identify reads the instance identity, waiting for IMDS if it is not up yet (early boot).
func (a *agent) identify(ctx context.Context) error {
	delay, logged := 100*time.Millisecond, time.Time{}
	for {
		id, err := a.imds.Identity(ctx)
		if err == nil {
			a.id = id
			return nil
		}
		if errors.Is(err, imds.ErrInvalidInstanceID) {
			return fmt.Errorf("identifying the instance: %w", err)
		}
		if time.Since(logged) > 30*time.Second {
			a.log.Warn("instance metadata not available yet, retrying", "imds", a.imds.Endpoint(), "error", err)
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reading the instance identity (%v): %w", err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// membership finds the instance's group from its spotmax:group tag: through IMDS when the
// launch template enables instance metadata tags, else through EC2 DescribeTags on itself, as
// the seed script did.
func (a *agent) membership(ctx context.Context) error {
	a.ec2 = &lazyEC2{cfg: a.cfg.AWS, region: a.id.Region, imds: a.imds}
	var tags map[string]string
	var err error
	for attempt := 0; ; attempt++ {
		it := newIMDSTags(a.imds, a.cfg.TagInterval)
		tags, err = it.All(ctx)
		if err == nil {
			a.tags = it
			break
		}
		if errors.Is(err, imds.ErrTagsUnavailable) {
			et := ec2Tags{ec2: a.ec2, id: a.id.InstanceID, every: a.cfg.EC2TagInterval}
			a.tags = et
			a.log.Info("instance tags are not in IMDS (enable InstanceMetadataTags in the launch template): reading them from EC2",
				"instance", a.id.InstanceID)
			if tags, err = et.All(ctx); err != nil {
				return fmt.Errorf("reading the tags of %s to check its membership: %w", a.id.InstanceID, err)
			}
			break
		}
		if attempt >= 5 || ctx.Err() != nil {
			return fmt.Errorf("reading the tags of %s to check its membership: %w", a.id.InstanceID, err)
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	a.group = tags[groupconfig.TagGroup]
	if a.group == "" {
		return fmt.Errorf("%w: instance %s has no %s tag", ErrNotMember, a.id.InstanceID, groupconfig.TagGroup)
	}
	return nil
}

// sources are what the watcher polls.
func (a *agent) sources() []imds.Source {
	// The spot notice gives two minutes and is polled fast; a rebalance recommendation is
	// advisory and Auto Scaling's termination waits for lifecycle hooks, so they are polled at
	// the slower event interval, as the retiring mark is with the tags.
	return []imds.Source{a.imds.SpotSource(a.cfg.NoticeInterval), a.imds.RebalanceSource(a.cfg.EventInterval),
		a.imds.LifecycleSource(a.cfg.EventInterval), tagSource(a.tags, groupconfig.StateRetiring, imds.KindRetiring)}
}
