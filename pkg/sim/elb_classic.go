package sim

import (
	"sort"
	"time"
)

// Classic Load Balancers (Elastic Load Balancing API version 2012-06-01): the part Auto Scaling
// and spotmax use. A registered instance is OutOfService ("Instance registration is still in
// progress.") until it has passed HealthyThreshold health checks Interval apart; a deregistered
// one stays InService ("Instance deregistration currently in progress.") for the
// connection-draining timeout when connection draining is enabled (disabled by default for a
// load balancer created through the API; 300 s when enabled without a timeout).

// ClassicLBSpec describes a Classic Load Balancer to create, for callers inside the process.
type ClassicLBSpec struct {
	Name string
	AZs  []string // default: every AZ of the region
	// ConnectionDraining enables connection draining with this timeout; nil leaves it disabled.
	ConnectionDraining *time.Duration
}

type classicLB struct {
	name, dns        string
	azs              []string
	created          time.Time
	drainingEnabled  bool
	drainingTimeout  int32
	crossZone        bool
	idleTimeout      int32
	interval, thresh int32
	instances        map[string]*clbInstance
}

type clbInstance struct {
	healthyAt  time.Time
	drainUntil time.Time
}

var clbNamePattern = lazyRegexp(`^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$`)

var elbv1Actions = map[string]func(r *Region, c *call) *APIError{
	"CreateLoadBalancer":             (*Region).clbCreate,
	"DescribeLoadBalancers":          (*Region).clbDescribe,
	"DescribeLoadBalancerAttributes": (*Region).clbDescribeAttributes,
	"ModifyLoadBalancerAttributes":   (*Region).clbModifyAttributes,
	"DescribeInstanceHealth":         (*Region).clbDescribeInstanceHealth,
}

func clbNotFound(name string) *APIError {
	return errf("LoadBalancerNotFound", "There is no ACTIVE Load Balancer named '%s'", name)
}

// CreateClassicLoadBalancer creates a Classic Load Balancer and returns its DNS name.
func (r *Region) CreateClassicLoadBalancer(spec ClassicLBSpec) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lb, err := r.clbNew(spec)
	if err != nil {
		return "", err
	}
	return lb.dns, nil
}

func (r *Region) clbNew(spec ClassicLBSpec) (*classicLB, *APIError) {
	if spec.Name == "" {
		return nil, nullMember(CodeValidationError, "loadBalancerName")
	}
	if !clbNamePattern().MatchString(spec.Name) {
		return nil, errf(CodeValidationError, "LoadBalancer name cannot contain characters other than alphanumeric characters and hyphens, and cannot begin or end with a hyphen: %s", spec.Name)
	}
	st := r.elb()
	if lb := st.clbs[spec.Name]; lb != nil {
		return lb, nil
	}
	azs := spec.AZs
	if len(azs) == 0 {
		for _, az := range r.azs {
			azs = append(azs, az.Name)
		}
	}
	for _, az := range azs {
		if !r.hasAZ(az) {
			return nil, errf(CodeValidationError, "Invalid Availability Zone: %s", az)
		}
	}
	lb := &classicLB{name: spec.Name, dns: r.lbNewDNSName(spec.Name), azs: append([]string(nil), azs...), created: r.now(),
		drainingTimeout: 300, idleTimeout: 60, interval: 30, thresh: 10, instances: map[string]*clbInstance{}}
	if spec.ConnectionDraining != nil {
		lb.drainingEnabled = true
		lb.drainingTimeout = int32(spec.ConnectionDraining.Seconds())
	}
	st.clbs[lb.name] = lb
	return lb, nil
}

func (r *Region) clbRegister(lb *classicLB, id string) {
	if i := lb.instances[id]; i != nil && i.drainUntil.IsZero() {
		return
	}
	lb.instances[id] = &clbInstance{healthyAt: r.now().Add(time.Duration(lb.interval*lb.thresh) * time.Second)}
}

// clbDeregister deregisters an instance and returns how long it drains.
func (r *Region) clbDeregister(lb *classicLB, id string) time.Duration {
	i := lb.instances[id]
	if i == nil {
		return 0
	}
	if !i.drainUntil.IsZero() {
		return max(0, i.drainUntil.Sub(r.now()))
	}
	if !lb.drainingEnabled {
		delete(lb.instances, id)
		return 0
	}
	d := time.Duration(lb.drainingTimeout) * time.Second
	i.drainUntil = r.now().Add(d)
	name := lb.name
	r.after(d, func() {
		if cur := r.elb().clbs[name]; cur != nil && cur.instances[id] == i {
			delete(cur.instances, id)
		}
	})
	return d
}

// clbHealth returns an instance's state, reason code and description.
func (r *Region) clbHealth(lb *classicLB, id string) (state, reason, desc string) {
	i := lb.instances[id]
	if i == nil || (!i.drainUntil.IsZero() && !r.now().Before(i.drainUntil)) {
		return "Unknown", "N/A", "Instance is not registered with the load balancer."
	}
	if !i.drainUntil.IsZero() {
		return "InService", "N/A", "Instance deregistration currently in progress."
	}
	in := r.instances[id]
	if in == nil || in.State != StateRunning {
		return "OutOfService", "Instance", "Instance is in stopped or terminated state."
	}
	if r.now().Before(i.healthyAt) {
		return "OutOfService", "ELB", "Instance registration is still in progress."
	}
	return "InService", "N/A", "N/A"
}

func (r *Region) clbInstanceState(lb *classicLB, id string) string {
	s, _, _ := r.clbHealth(lb, id)
	return s
}

// ClassicInstanceHealth returns an instance's state in a Classic Load Balancer ("" when the
// load balancer does not exist).
func (r *Region) ClassicInstanceHealth(name, instanceID string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sched.runDue(r.clock.Now())
	lb := r.elb().clbs[name]
	if lb == nil {
		return ""
	}
	return r.clbInstanceState(lb, instanceID)
}

func (r *Region) clbByName(name string) (*classicLB, *APIError) {
	if name == "" {
		return nil, nullMember(CodeValidationError, "loadBalancerName")
	}
	lb := r.elb().clbs[name]
	if lb == nil {
		return nil, clbNotFound(name)
	}
	return lb, nil
}

func (r *Region) clbCreate(c *call) *APIError {
	p := c.Form
	if len(p.Structs("Listeners.member")) == 0 {
		return nullMember(CodeValidationError, "listeners")
	}
	azs := p.List("AvailabilityZones.member")
	for _, id := range p.List("Subnets.member") {
		sn := r.subnets[id]
		if sn == nil {
			return errf("InvalidSubnet", "The subnet %s does not exist", id)
		}
		azs = append(azs, sn.AZ)
	}
	if len(azs) == 0 {
		return errf(CodeValidationError, "Either AvailabilityZones or SubnetIds must be specified")
	}
	lb, err := r.clbNew(ClassicLBSpec{Name: p.Get("LoadBalancerName"), AZs: azs})
	if err != nil {
		return err
	}
	c.writeQuery(struct {
		DNSName string `xml:"DNSName"`
	}{lb.dns})
	return nil
}

func (r *Region) clbDescribe(c *call) *APIError {
	names := c.Form.List("LoadBalancerNames.member")
	st := r.elb()
	var list []*classicLB
	if len(names) > 0 {
		for _, n := range names {
			lb := st.clbs[n]
			if lb == nil {
				return clbNotFound(n)
			}
			list = append(list, lb)
		}
	} else {
		for _, lb := range st.clbs {
			list = append(list, lb)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	}
	type inst struct {
		InstanceID string `xml:"InstanceId"`
	}
	type desc struct {
		AvailabilityZones asList[string] `xml:"AvailabilityZones"`
		CreatedTime       string         `xml:"CreatedTime"`
		DNSName           string         `xml:"DNSName"`
		HealthCheck       struct {
			HealthyThreshold   int32  `xml:"HealthyThreshold"`
			Interval           int32  `xml:"Interval"`
			Target             string `xml:"Target"`
			Timeout            int32  `xml:"Timeout"`
			UnhealthyThreshold int32  `xml:"UnhealthyThreshold"`
		} `xml:"HealthCheck"`
		Instances        asList[inst] `xml:"Instances"`
		LoadBalancerName string       `xml:"LoadBalancerName"`
		Scheme           string       `xml:"Scheme"`
	}
	out := asList[desc]{Items: []desc{}}
	for _, lb := range list {
		d := desc{AvailabilityZones: asMembers(append([]string(nil), lb.azs...)), CreatedTime: isoTime(lb.created),
			DNSName: lb.dns, LoadBalancerName: lb.name, Scheme: "internet-facing", Instances: asList[inst]{Items: []inst{}}}
		d.HealthCheck.HealthyThreshold, d.HealthCheck.Interval, d.HealthCheck.Target = lb.thresh, lb.interval, "TCP:80"
		d.HealthCheck.Timeout, d.HealthCheck.UnhealthyThreshold = 5, 2
		ids := make([]string, 0, len(lb.instances))
		for id := range lb.instances {
			if i := lb.instances[id]; i.drainUntil.IsZero() {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			d.Instances.Items = append(d.Instances.Items, inst{id})
		}
		out.Items = append(out.Items, d)
	}
	c.writeQuery(struct {
		LoadBalancerDescriptions asList[desc] `xml:"LoadBalancerDescriptions"`
	}{out})
	return nil
}

type clbAttrs struct {
	AccessLog struct {
		Enabled bool `xml:"Enabled"`
	} `xml:"AccessLog"`
	ConnectionDraining struct {
		Enabled bool  `xml:"Enabled"`
		Timeout int32 `xml:"Timeout"`
	} `xml:"ConnectionDraining"`
	ConnectionSettings struct {
		IdleTimeout int32 `xml:"IdleTimeout"`
	} `xml:"ConnectionSettings"`
	CrossZoneLoadBalancing struct {
		Enabled bool `xml:"Enabled"`
	} `xml:"CrossZoneLoadBalancing"`
}

func (lb *classicLB) attrs() clbAttrs {
	var a clbAttrs
	a.ConnectionDraining.Enabled = lb.drainingEnabled
	a.ConnectionDraining.Timeout = lb.drainingTimeout
	a.ConnectionSettings.IdleTimeout = lb.idleTimeout
	a.CrossZoneLoadBalancing.Enabled = lb.crossZone
	return a
}

func (r *Region) clbDescribeAttributes(c *call) *APIError {
	lb, err := r.clbByName(c.Form.Get("LoadBalancerName"))
	if err != nil {
		return err
	}
	c.writeQuery(struct {
		LoadBalancerAttributes clbAttrs `xml:"LoadBalancerAttributes"`
	}{lb.attrs()})
	return nil
}

func (r *Region) clbModifyAttributes(c *call) *APIError {
	lb, err := r.clbByName(c.Form.Get("LoadBalancerName"))
	if err != nil {
		return err
	}
	p := c.Form.Sub("LoadBalancerAttributes")
	if len(p.Values()) == 0 {
		return nullMember(CodeValidationError, "loadBalancerAttributes")
	}
	drain := p.Sub("ConnectionDraining")
	enabled, hasEnabled, berr := drain.Bool("Enabled")
	if berr != nil {
		return berr
	}
	if len(drain.Values()) > 0 && !hasEnabled {
		return nullMember(CodeValidationError, "loadBalancerAttributes.connectionDraining.enabled")
	}
	timeout, hasTimeout, err := asInt32(drain, "Timeout")
	if err != nil {
		return err
	}
	if hasTimeout && (timeout < 1 || timeout > 3600) {
		return errf(CodeValidationError, "ConnectionDraining timeout must be between 1 and 3600 seconds.")
	}
	idle, hasIdle, err := asInt32(p.Sub("ConnectionSettings"), "IdleTimeout")
	if err != nil {
		return err
	}
	if hasIdle && (idle < 1 || idle > 4000) {
		return errf(CodeValidationError, "IdleTimeout must be between 1 and 4000 seconds.")
	}
	if hasEnabled {
		lb.drainingEnabled = enabled
	}
	if hasTimeout {
		lb.drainingTimeout = timeout
	}
	if hasIdle {
		lb.idleTimeout = idle
	}
	if b, ok, _ := p.Sub("CrossZoneLoadBalancing").Bool("Enabled"); ok {
		lb.crossZone = b
	}
	c.writeQuery(struct {
		LoadBalancerAttributes clbAttrs `xml:"LoadBalancerAttributes"`
		LoadBalancerName       string   `xml:"LoadBalancerName"`
	}{lb.attrs(), lb.name})
	return nil
}

func clbInstancesParam(p params) []string {
	var ids []string
	for _, s := range p.Structs("Instances.member") {
		if id := s.Get("InstanceId"); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

func (r *Region) clbDescribeInstanceHealth(c *call) *APIError {
	lb, err := r.clbByName(c.Form.Get("LoadBalancerName"))
	if err != nil {
		return err
	}
	ids := clbInstancesParam(c.Form)
	if len(ids) == 0 {
		for id, i := range lb.instances {
			if i.drainUntil.IsZero() || r.now().Before(i.drainUntil) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
	} else {
		for _, id := range ids {
			if r.instances[id] == nil {
				return errf("InvalidInstance", "Could not find EC2 instance %s.", id)
			}
		}
	}
	type state struct {
		Description string `xml:"Description"`
		InstanceID  string `xml:"InstanceId"`
		ReasonCode  string `xml:"ReasonCode"`
		State       string `xml:"State"`
	}
	out := asList[state]{Items: []state{}}
	for _, id := range ids {
		s, reason, desc := r.clbHealth(lb, id)
		out.Items = append(out.Items, state{desc, id, reason, s})
	}
	c.writeQuery(struct {
		InstanceStates asList[state] `xml:"InstanceStates"`
	}{out})
	return nil
}
