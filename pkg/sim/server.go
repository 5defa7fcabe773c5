package sim

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/spotmax/spotmax/pkg/sim/awsproto"
	"github.com/spotmax/spotmax/pkg/sim/cloudwatch"
	"github.com/spotmax/spotmax/pkg/sim/eventbridge"
	"github.com/spotmax/spotmax/pkg/sim/logs"
	"github.com/spotmax/spotmax/pkg/sim/pricing"
	"github.com/spotmax/spotmax/pkg/sim/sqs"
)

// service is one AWS service of this package: EC2, Auto Scaling and Elastic Load Balancing,
// which share one model of instances and groups. New registers each with the region's
// awsproto.Mux.
type service struct {
	// name is the SigV4 signing name: ec2, autoscaling, elasticloadbalancing.
	name string
	// xmlns is the namespace of XML responses.
	xmlns string
	// setup runs once per Region, in New, for per-region state and hooks.
	setup func(r *Region)
	// handle serves one call.
	handle func(r *Region, c *call)
}

var services = map[string]*service{}

// registerService adds a service; service files call it from init.
func registerService(s *service) { services[s.name] = s }

// serviceRoutes are the routing keys of this package's services for requests that carry no
// SigV4 credential scope.
var serviceRoutes = map[string]awsproto.Service{
	"ec2":                  {QueryProtocol: protoEC2, QueryVersions: []string{"2016-11-15"}},
	"autoscaling":          {QueryVersions: []string{"2011-01-01"}},
	"elasticloadbalancing": {QueryVersions: []string{elbv2Version, elbv1Version}},
}

// setupServices sets up the region's services and registers them with its mux: this package's
// (in name order, as their setups add state-change hooks), then the services in packages of
// their own, each given the region's view it needs (serviceRegion).
func (r *Region) setupServices() {
	names := make([]string, 0, len(services))
	for n := range services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := services[n]
		if s.setup != nil {
			s.setup(r)
		}
		spec := serviceRoutes[n]
		spec.Name, spec.XMLNS = s.name, s.xmlns
		spec.Handle = func(c *awsproto.Call) { s.handle(r, &call{c}) }
		r.mux.Register(&spec)
	}
	host := serviceRegion{r}
	r.cloudwatch = cloudwatch.New(host)
	r.logs = logs.New(host)
	r.sqs = sqs.New(host)
	r.eventbridge = eventbridge.New(host, r.sqs)
	// EventBridge sees every region event, with the lock held, in event order.
	x := r.ext()
	x.subs = append(x.subs, func(e Event) {
		r.eventbridge.Dispatch(e.ID, e.DetailType, e.JSON(r.opts.AccountID, r.opts.Region))
	})
	for _, spec := range []*awsproto.Service{r.cloudwatch.Spec(), r.logs.Spec(), r.sqs.Spec(), r.eventbridge.Spec(),
		pricing.New(r.opts.Region, priceCatalog()).Spec()} {
		r.mux.Register(spec)
	}
}

// Server serves a Region over HTTP on a loopback port.
type Server struct {
	region *Region
	ln     net.Listener
	srv    *http.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// Start creates a Region and serves it on addr (host:port; "127.0.0.1:0" picks a free port).
// The server runs until Close or until ctx ends.
func Start(ctx context.Context, addr string, opts Options) (*Server, error) {
	return Serve(ctx, addr, New(opts))
}

// Serve serves an existing Region on addr.
func Serve(ctx context.Context, addr string, r *Region) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Server{region: r, ln: ln, cancel: cancel, done: make(chan struct{})}
	s.srv = &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go r.Run(ctx)
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	go func() {
		<-ctx.Done()
		_ = s.srv.Close()
		r.closeEndpoints()
	}()
	return s, nil
}

// Region returns the served region.
func (s *Server) Region() *Region { return s.region }

// URL returns the endpoint URL for AWS_ENDPOINT_URL, e.g. http://127.0.0.1:4566.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Addr returns the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server, the region's clock loop and every IMDS endpoint.
func (s *Server) Close() error {
	s.cancel()
	<-s.done
	s.region.closeEndpoints()
	return nil
}

// closeHooks are run by closeEndpoints; the IMDS code registers its listeners here.
func (r *Region) closeEndpoints() {
	r.mu.Lock()
	hooks := r.closers
	r.closers = nil
	r.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
}

// Handler returns the region's HTTP handler: the AWS APIs, and the control API under /_sim/.
func (r *Region) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/_sim/", r.controlHandler())
	mux.HandleFunc("/", r.serveAPI)
	return mux
}

func (r *Region) serveAPI(w http.ResponseWriter, req *http.Request) {
	c := r.mux.Route(w, req, r.newRequestID())
	if c == nil {
		return
	}
	r.mu.Lock()
	r.calls[c.Service+":"+c.Action]++
	if c.AccessKey != "" {
		if r.callsBy[c.AccessKey] == nil {
			r.callsBy[c.AccessKey] = map[string]bool{}
		}
		r.callsBy[c.AccessKey][c.Service+":"+c.Action] = true
	}
	fault, delay := r.injected(c.Service, c.Action)
	r.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
			return
		}
	}
	if fault != nil {
		c.Fail(fault)
		return
	}
	c.Dispatch()
}
