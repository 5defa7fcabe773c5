// Package consul owns taking an instance out of Consul service discovery before it goes away:
// deregistering every service registered with the instance's Consul agent, or putting the
// agent's node in maintenance mode. The agent on the instance does it through its local Consul
// agent; the controller does it remotely through the instance's agent port
// (spotmax:consul_port) as the "consul-deregister" step of the replacement workflow, which
// lives in package replace/steps/consul; this package knows nothing of the workflow.
//
// Both are idempotent: whichever runs second finds nothing left to do.
package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// Mode is how services are taken out of discovery.
type Mode string

// Modes.
const (
	// ModeDeregister deregisters every service of the agent. Services defined in the agent's
	// configuration files come back if the agent is reloaded or restarted.
	ModeDeregister Mode = "deregister"
	// ModeMaintenance puts the whole node in maintenance mode: a critical check that makes every
	// service of the node drop out of healthy (?passing) results, kept across agent restarts.
	ModeMaintenance Mode = "maintenance"
)

// ParseMode parses a mode name; "" is ModeDeregister.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeDeregister:
		return ModeDeregister, nil
	case ModeMaintenance:
		return ModeMaintenance, nil
	}
	return "", fmt.Errorf("consul mode %q: want %s or %s", s, ModeDeregister, ModeMaintenance)
}

// Errors a caller may test for with errors.Is.
var (
	// ErrUnreachable: no Consul agent answered at the address.
	ErrUnreachable = errors.New("consul agent unreachable")
	// ErrPermission: the agent refused the ACL token, or the token cannot see every service.
	ErrPermission = errors.New("consul ACL token refused")
)

// DefaultTimeout bounds each request to an agent.
const DefaultTimeout = 5 * time.Second

// Options configure a connection to one Consul agent. Anything left empty comes from the
// standard CONSUL_HTTP_* environment variables (CONSUL_HTTP_TOKEN, CONSUL_HTTP_SSL,
// CONSUL_CACERT, ...), then Consul's defaults.
type Options struct {
	// Address is host:port or a URL (http://, https://). Empty: CONSUL_HTTP_ADDR, else
	// 127.0.0.1:8500.
	Address string
	// Token is the ACL token. Empty: CONSUL_HTTP_TOKEN.
	Token string
	Mode  Mode
	// Reason is recorded with maintenance mode.
	Reason string
	// Timeout bounds each request (default DefaultTimeout).
	Timeout time.Duration
}

// Agent is one Consul agent's HTTP API.
type Agent struct {
	c      *api.Client
	http   *http.Client
	token  string
	addr   string
	mode   Mode
	reason string
}

// NewAgent returns a client for one agent. It does not contact it.
func NewAgent(o Options) (*Agent, error) {
	mode, err := ParseMode(string(o.Mode))
	if err != nil {
		return nil, err
	}
	cfg := api.DefaultConfig()
	if o.Address != "" {
		cfg.Address = o.Address
		if u, err := url.Parse(o.Address); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			cfg.Scheme, cfg.Address = u.Scheme, u.Host
		}
	}
	if o.Token != "" {
		cfg.Token = o.Token
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if cfg.Transport != nil {
		cfg.Transport.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
		cfg.Transport.ResponseHeaderTimeout = timeout
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("configuring the Consul client for %s: %w", cfg.Address, err)
	}
	reason := o.Reason
	if reason == "" {
		reason = "spotmax: instance is going away"
	}
	// NewClient filled in cfg.HttpClient (with the TLS settings): the ACL probe uses it.
	return &Agent{c: c, http: cfg.HttpClient, token: cfg.Token, addr: cfg.Scheme + "://" + cfg.Address, mode: mode, reason: reason}, nil
}

// Address returns the agent's address, for logs.
func (a *Agent) Address() string { return a.addr }

// Result says what Withdraw did.
type Result struct {
	Address string `json:"address"`
	Mode    Mode   `json:"mode"`
	// Services are the ids of the services deregistered, or put in maintenance with the node.
	Services []string `json:"services"`
}

// Withdraw takes the agent's services out of discovery: it deregisters each of them
// (ModeDeregister) or puts the node in maintenance (ModeMaintenance). It is idempotent: a
// service that is already gone is not an error, and an agent with no services is done at once.
// An agent that does not answer is ErrUnreachable; a refused token is ErrPermission.
func (a *Agent) Withdraw(ctx context.Context) (Result, error) {
	res := Result{Address: a.addr, Mode: a.mode, Services: []string{}}
	services, err := a.services(ctx)
	if err != nil {
		return res, err
	}
	ids := make([]string, 0, len(services))
	for id := range services {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	switch a.mode {
	case ModeMaintenance:
		// The node check makes every service on the node critical, the ones registered later too.
		if err := a.c.Agent().EnableNodeMaintenance(a.reason); err != nil {
			return res, a.wrap("enabling node maintenance", err)
		}
		res.Services = ids
	default:
		for _, id := range ids {
			err := a.c.Agent().ServiceDeregisterOpts(id, (&api.QueryOptions{}).WithContext(ctx))
			if isStatus(err, http.StatusNotFound) {
				continue // gone in the meantime: deregistered by the other side
			}
			if err != nil {
				return res, a.wrap("deregistering service "+id, err)
			}
			res.Services = append(res.Services, id)
		}
	}
	return res, nil
}

// services lists the services registered with the agent, refusing a token that only sees some.
func (a *Agent) services(ctx context.Context) (map[string]*api.AgentService, error) {
	out := map[string]*api.AgentService{}
	meta, err := a.c.Raw().Query("/v1/agent/services", &out, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, a.wrap("listing services", err)
	}
	if meta != nil && meta.ResultsFilteredByACLs {
		return nil, fmt.Errorf("listing services of the Consul agent at %s: %w: the token cannot read every service (results filtered by ACLs), so some would stay registered; give it service:write on all services", a.addr, ErrPermission)
	}
	if len(out) == 0 && a.token == "" && a.aclDeny(ctx) {
		// Consul filters the list for the anonymous token without saying so (no
		// X-Consul-Results-Filtered-By-ACLs on this endpoint in 1.15): an empty list means nothing.
		return nil, fmt.Errorf("listing services of the Consul agent at %s: %w: ACLs are on with default policy deny and no token is set (--consul-token or CONSUL_HTTP_TOKEN), so the services cannot be seen", a.addr, ErrPermission)
	}
	return out, nil
}

// aclDeny reports whether the agent enforces ACLs with default policy deny.
func (a *Agent) aclDeny(ctx context.Context) bool {
	if a.http == nil {
		return false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.addr+"/v1/agent/services", nil)
	if err != nil {
		return false
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return strings.EqualFold(resp.Header.Get("X-Consul-Default-Acl-Policy"), "deny")
}

// InMaintenance reports whether the agent's node is in maintenance mode.
func (a *Agent) InMaintenance(ctx context.Context) (bool, error) {
	checks, err := a.c.Agent().ChecksWithFilterOpts("", (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return false, a.wrap("listing checks", err)
	}
	_, ok := checks[api.NodeMaint]
	return ok, nil
}

func isStatus(err error, code int) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == code
}

// wrap names the agent and classifies err.
func (a *Agent) wrap(doing string, err error) error {
	var se api.StatusError
	switch {
	case errors.As(err, &se) && (se.Code == http.StatusForbidden || se.Code == http.StatusUnauthorized):
		return fmt.Errorf("%s on the Consul agent at %s: %w: %s", doing, a.addr, ErrPermission, strings.TrimSpace(se.Body))
	case errors.As(err, &se):
		return fmt.Errorf("%s on the Consul agent at %s: %w", doing, a.addr, err)
	case unreachable(err):
		return fmt.Errorf("%s on the Consul agent at %s: %w: %w", doing, a.addr, ErrUnreachable, err)
	}
	return fmt.Errorf("%s on the Consul agent at %s: %w", doing, a.addr, err)
}

func unreachable(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var ue *url.Error
	return errors.As(err, &oe) || errors.As(err, &ne) || errors.As(err, &ue)
}
