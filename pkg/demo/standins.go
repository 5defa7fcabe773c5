package demo

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/sim"
)

// The demo runs without Consul, Kubernetes or block devices: these in-process stand-ins play
// their parts and say so in the timeline. The real implementations are tested against a real
// Consul agent, a real kube-apiserver and real loop devices.

// consulStandIn is a service catalogue: instance → services registered on its Consul agent.
type consulStandIn struct {
	mu       sync.Mutex
	services map[string][]string
	say      func(format string, args ...any)
}

func (c *consulStandIn) register(instance string, services ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.services[instance] = append(c.services[instance], services...)
}

func (c *consulStandIn) deregister(instance, by string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.services[instance]; len(s) > 0 {
		c.say("consul (stand-in): %s deregistered %s of %s", by, strings.Join(s, ", "), instance)
	}
	delete(c.services, instance)
}

func (c *consulStandIn) registered(instance string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.services[instance])
}

// consulStep is the controller's Consul deregistration step, against the stand-in.
type consulStep struct{ c *consulStandIn }

func (s consulStep) Name() string { return "consul-deregister" }
func (s consulStep) Enabled(g *inventory.Group) bool {
	return g.Config != nil && g.Config.ConsulPort != 0
}
func (s consulStep) Run(_ context.Context, t replace.Target) error {
	s.c.deregister(t.Old.ID, "controller")
	return nil
}

// kubeStandIn is a cluster's node list: instance → pods on its node.
type kubeStandIn struct {
	mu   sync.Mutex
	pods map[string]int
	say  func(format string, args ...any)
}

// drainStep is the controller's Kubernetes drain step, against the stand-in.
type drainStep struct{ k *kubeStandIn }

func (s drainStep) Name() string { return "k8s-drain" }
func (s drainStep) Enabled(g *inventory.Group) bool {
	return g.Config != nil && g.Config.K8sConfigFilePath != ""
}
func (s drainStep) Run(_ context.Context, t replace.Target) error {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	n := s.k.pods[t.Old.ID]
	s.k.pods[t.New] += n
	delete(s.k.pods, t.Old.ID)
	s.k.say("kubernetes (stand-in): node of %s cordoned and drained, %d pods evicted (rescheduled on %s)", t.Old.ID, n, t.New)
	return nil
}

// agents plays spotmax-agent on every simulated instance: it relays interruption notices, and on
// a notice or a retirement mark deregisters the instance's services, unmounts the data volume and
// reports it released; on a replacement it mounts the volume assigned to it. It goes through the
// EC2 API with the same tags the real agent uses.
type agents struct {
	ec2    *ec2.Client
	region *sim.Region
	consul *consulStandIn
	say    func(format string, args ...any)

	mu       sync.Mutex
	released map[string]bool
	mounted  map[string]time.Time // instance → when its volume was mounted
	relayed  map[string]bool
}

func (a *agents) run(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, in := range a.region.Instances() {
			if in.State != sim.StateRunning || in.Tags[groupconfig.TagGroup] == "" {
				continue
			}
			a.tick(ctx, in)
		}
	}
}

func (a *agents) tick(ctx context.Context, in sim.Instance) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if in.Interruption != nil && !a.relayed[in.ID] {
		a.relayed[in.ID] = true
		notice := groupconfig.RelayedNotice{Action: in.Interruption.Action, Time: in.Interruption.Time}
		a.tag(ctx, in.ID, groupconfig.StateNotice, notice.String())
		a.say("agent on %s: spot interruption notice (%s at %s), relayed", in.ID, in.Interruption.Action, clock(in.Interruption.Time))
	}
	leaving := in.Interruption != nil || in.Tags[groupconfig.StateRetiring] != ""
	if leaving && !a.released[in.ID] {
		a.released[in.ID] = true
		a.consul.deregister(in.ID, "agent")
		for _, bd := range in.BlockDevices {
			if bd.DeviceName == "/dev/sdf" {
				a.tag(ctx, in.ID, groupconfig.StateVolumeReleased, bd.VolumeID)
				a.say("agent on %s: /data unmounted cleanly, %s released", in.ID, bd.VolumeID)
			}
		}
	}
	if vol := in.Tags[groupconfig.StateVolume]; vol != "" && in.Tags[groupconfig.StateVolumeMounted] != vol {
		for _, bd := range in.BlockDevices {
			if bd.VolumeID == vol {
				v, _ := a.region.Volume(vol)
				a.tag(ctx, in.ID, groupconfig.StateVolumeMounted, vol)
				a.mounted[in.ID] = a.region.Clock().Now()
				a.consul.register(in.ID, "web")
				a.say("agent on %s: %s mounted at %s (content %s), service web registered", in.ID, vol,
					in.Tags[groupconfig.StateMountPath], v.Marker)
			}
		}
	}
}

func (a *agents) tag(ctx context.Context, id, k, v string) {
	_, _ = a.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id},
		Tags: []ec2types.Tag{{Key: aws.String(k), Value: aws.String(v)}}})
}

func clock(t time.Time) string { return t.UTC().Format("15:04:05") }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var _ = fmt.Sprint
