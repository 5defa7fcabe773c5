// Package consulstep is the Consul step of the replacement workflow: it takes an instance
// being replaced out of Consul through the instance's own Consul agent. It is apart from package
// consul so that spotmax-agent, which uses consul, does not link the workflow.
package consulstep

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/spotmax/spotmax/pkg/consul"
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
// Wire it into replace.Workflow.Steps; it is enabled for groups with spotmax:consul_port.
type Step struct {
	// Token is the ACL token; empty: CONSUL_HTTP_TOKEN of the controller.
	Token string
	// Mode defaults to consul.ModeDeregister.
	Mode consul.Mode
	// Timeout bounds each request (default consul.DefaultTimeout).
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
	a, err := consul.NewAgent(consul.Options{Address: addr, Token: s.Token, Mode: s.Mode, Timeout: s.Timeout,
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
