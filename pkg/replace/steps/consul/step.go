// Package consul is the replacement workflow's "consul-deregister" pre-detach step: it takes an
// instance being replaced out of Consul through the instance's own Consul agent, with the pure
// client of package pkg/consul (which spotmax-agent uses too, without linking the workflow).
// Its registration, with its metric, is in package replace/steps.
package consul

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	consulclient "github.com/spotmax/spotmax/pkg/consul"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/replace"
)

// StepName is the name of the Consul step in replacement plans and progress.
const StepName = "consul-deregister"

// Step is the replacement workflow's Consul step: it takes the old instance's services out of
// discovery through the instance's Consul agent at <private IP>:<spotmax:consul_port>. The
// workflow then waits spotmax:sd_delay_detach_secs before detaching. An error is returned
// (the workflow treats it as a warning for an interrupted instance and aborts a proactive
// replacement); an agent that already withdrew its services, through spotmax-agent, is no error.
// It is enabled for groups with spotmax:consul_port.
type Step struct {
	// Token is the ACL token; empty: CONSUL_HTTP_TOKEN of the controller.
	Token string
	// Mode defaults to consulclient.ModeDeregister.
	Mode consulclient.Mode
	// Timeout bounds each request (default consulclient.DefaultTimeout).
	Timeout time.Duration
	Log     *slog.Logger
}

var _ replace.PreDetachStep = (*Step)(nil)

// Name implements replace.PreDetachStep.
func (s *Step) Name() string { return StepName }

// Enabled reports whether the group sets spotmax:consul_port.
func (s *Step) Enabled(g *inventory.Group) bool {
	return g != nil && g.Config != nil && g.Config.ConsulPort != 0
}

// Run withdraws the old instance's services from its Consul agent.
func (s *Step) Run(ctx context.Context, t replace.Target) error {
	if !s.Enabled(t.Group) {
		return nil
	}
	if t.Old.PrivateIP == "" {
		return fmt.Errorf("deregistering %s from Consul: the instance has no private IP", t.Old.ID)
	}
	addr := net.JoinHostPort(t.Old.PrivateIP, strconv.Itoa(t.Group.Config.ConsulPort))
	a, err := consulclient.NewAgent(consulclient.Options{Address: addr, Token: s.Token, Mode: s.Mode, Timeout: s.Timeout,
		Reason: fmt.Sprintf("spotmax: %s of group %s is being replaced (%s)", t.Old.ID, t.Group.Name, t.Reason)})
	if err != nil {
		return err
	}
	res, err := a.Withdraw(ctx)
	if err != nil {
		return fmt.Errorf("deregistering %s from Consul: %w", t.Old.ID, err)
	}
	if s.Log != nil {
		s.Log.Info("consul services withdrawn", "instance", t.Old.ID, "group", t.Group.Name, "agent", res.Address,
			"mode", res.Mode, "services", res.Services)
	}
	return nil
}
