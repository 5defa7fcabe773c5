package sim

import (
	"fmt"
	"sort"
	"time"
)

// Elastic Load Balancing: the target groups of ELBv2 (elbv2.go) and the Classic Load Balancers
// (elb_classic.go), and how Auto Scaling groups register their members with them. Both APIs are
// AWS query services signed as "elasticloadbalancing"; the Version parameter tells them apart.
//
// A member is registered when it enters InService. When it leaves (detach, scale-in,
// replacement, TerminateInstanceInAutoScalingGroup) it is deregistered and stays in Detaching or
// Terminating until the longest deregistration delay (target groups) or connection-draining
// timeout (Classic Load Balancers) has passed, as AWS does.

func init() {
	registerService(&service{
		name:   "elasticloadbalancing",
		xmlns:  elbv2XMLNS,
		setup:  setupELB,
		handle: serveELB,
	})
}

// ELB API versions and their XML namespaces.
const (
	elbv2Version = "2015-12-01"
	elbv1Version = "2012-06-01"
	elbv2XMLNS   = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
	elbv1XMLNS   = "http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/"
)

type elbState struct {
	tgs  map[string]*targetGroup // by ARN
	clbs map[string]*classicLB   // by name
}

func setupELB(r *Region) {
	r.svc["elasticloadbalancing"] = &elbState{tgs: map[string]*targetGroup{}, clbs: map[string]*classicLB{}}
}

func (r *Region) elb() *elbState { return r.svc["elasticloadbalancing"].(*elbState) }

func serveELB(r *Region, c *call) {
	var actions map[string]func(r *Region, c *call) *APIError
	switch c.Form.Get("Version") {
	case elbv2Version:
		actions = elbv2Actions
	case elbv1Version:
		c.XMLNS = elbv1XMLNS
		actions = elbv1Actions
	default:
		c.fail(errf("InvalidAction", "Version %q is not a version of Elastic Load Balancing (want %s or %s).", c.Form.Get("Version"), elbv2Version, elbv1Version))
		return
	}
	h, ok := actions[c.Action]
	if !ok {
		c.fail(notServed(c))
		return
	}
	var err *APIError
	r.Do(func() { err = h(r, c) })
	if err != nil {
		c.fail(err)
	}
}

// asgLoadBalancing is a group's Classic Load Balancers (its target groups are ASG.TargetGroupARNs)
// and the state of each attachment for DescribeLoadBalancerTargetGroups / DescribeLoadBalancers.
type asgLoadBalancing struct {
	names    []string
	removing map[string]time.Time // target group ARN or load balancer name → when it is Removed
}

// lbCheckSpec checks that the target groups and load balancers a group names exist.
func (r *Region) lbCheckSpec(tgARNs, names []string) *APIError {
	st := r.elb()
	for _, arn := range tgARNs {
		if st.tgs[arn] == nil {
			return errf(CodeValidationError, "Provided Target Groups may not be valid. Please ensure they exist and try again.")
		}
	}
	for _, n := range names {
		if st.clbs[n] == nil {
			return errf(CodeValidationError, "Provided Load Balancers may not be valid. Please ensure they exist and try again.")
		}
	}
	if len(tgARNs) > 50 {
		return errf(CodeValidationError, "The number of target groups (%d) exceeds the maximum of 50.", len(tgARNs))
	}
	if len(names) > 10 {
		return errf(CodeValidationError, "The number of load balancers (%d) exceeds the maximum of 10.", len(names))
	}
	return nil
}

// lbRegisterMember registers an InService member with the group's target groups and load
// balancers, unless the AddToLoadBalancer process is suspended.
func (r *Region) lbRegisterMember(g *ASG, id string) {
	if g.Suspended["AddToLoadBalancer"] {
		return
	}
	st := r.elb()
	for _, arn := range g.TargetGroupARNs {
		if tg := st.tgs[arn]; tg != nil {
			r.tgRegister(tg, id, tg.port)
		}
	}
	for _, n := range r.asgExtraOf(g).lb.names {
		if lb := st.clbs[n]; lb != nil {
			r.clbRegister(lb, id)
		}
	}
}

// lbDeregisterMember deregisters a leaving member from the group's target groups and load
// balancers and returns how long it drains: the longest deregistration delay or
// connection-draining timeout among those it was registered with.
func (r *Region) lbDeregisterMember(g *ASG, id string) time.Duration {
	st := r.elb()
	var d time.Duration
	for _, arn := range g.TargetGroupARNs {
		if tg := st.tgs[arn]; tg != nil {
			d = max(d, r.tgDeregister(tg, id))
		}
	}
	for _, n := range r.asgExtraOf(g).lb.names {
		if lb := st.clbs[n]; lb != nil {
			d = max(d, r.clbDeregister(lb, id))
		}
	}
	return d
}

// lbAttach adds target groups and load balancers to a group and registers its InService members.
func (r *Region) lbAttach(g *ASG, tgARNs, names []string) {
	x := r.asgExtraOf(g)
	st := r.elb()
	for _, arn := range tgARNs {
		delete(x.lb.removing, arn)
		if !asAnyOf(g.TargetGroupARNs, arn) {
			g.TargetGroupARNs = append(g.TargetGroupARNs, arn)
		}
		if g.Suspended["AddToLoadBalancer"] {
			continue
		}
		for _, m := range g.Members {
			if m.LifecycleState == LifecycleInService {
				r.tgRegister(st.tgs[arn], m.InstanceID, st.tgs[arn].port)
			}
		}
	}
	for _, n := range names {
		delete(x.lb.removing, n)
		if !asAnyOf(x.lb.names, n) {
			x.lb.names = append(x.lb.names, n)
		}
		if g.Suspended["AddToLoadBalancer"] {
			continue
		}
		for _, m := range g.Members {
			if m.LifecycleState == LifecycleInService {
				r.clbRegister(st.clbs[n], m.InstanceID)
			}
		}
	}
}

// lbDetach removes target groups and load balancers from a group, deregistering its members;
// each stays Removing while its members drain.
func (r *Region) lbDetach(g *ASG, tgARNs, names []string) {
	x := r.asgExtraOf(g)
	if x.lb.removing == nil {
		x.lb.removing = map[string]time.Time{}
	}
	st := r.elb()
	for _, arn := range tgARNs {
		if !asAnyOf(g.TargetGroupARNs, arn) {
			continue
		}
		g.TargetGroupARNs = asWithout(g.TargetGroupARNs, arn)
		var d time.Duration
		if tg := st.tgs[arn]; tg != nil {
			for _, m := range g.Members {
				d = max(d, r.tgDeregister(tg, m.InstanceID))
			}
		}
		x.lb.removing[arn] = r.now().Add(d)
	}
	for _, n := range names {
		if !asAnyOf(x.lb.names, n) {
			continue
		}
		x.lb.names = asWithout(x.lb.names, n)
		var d time.Duration
		if lb := st.clbs[n]; lb != nil {
			for _, m := range g.Members {
				d = max(d, r.clbDeregister(lb, m.InstanceID))
			}
		}
		x.lb.removing[n] = r.now().Add(d)
	}
}

// lbAttachmentState is the State of a target group or load balancer of a group: Added, then
// InService once every InService member is healthy in it; Removing while members drain.
func (r *Region) lbAttachmentState(g *ASG, key string, healthy func(id string) bool) string {
	x := r.asgExtraOf(g)
	if until, ok := x.lb.removing[key]; ok {
		if r.now().Before(until) {
			return "Removing"
		}
		return "Removed"
	}
	for _, m := range g.Members {
		if m.LifecycleState == LifecycleInService && !healthy(m.InstanceID) {
			return "Added"
		}
	}
	return "InService"
}

func asWithout(list []string, v string) []string {
	var out []string
	for _, s := range list {
		if s != v {
			out = append(out, s)
		}
	}
	return out
}

// lbNewDNSName returns a load balancer DNS name in AWS's shape.
func (r *Region) lbNewDNSName(name string) string {
	return fmt.Sprintf("%s-%d.%s.elb.amazonaws.com", name, 1000000000+r.rng.Int63n(999999999), r.opts.Region)
}

func (r *Region) asAttachLoadBalancerTargetGroups(c *call) *APIError {
	g, err := r.asMutable(c.Form.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	arns := c.Form.List("TargetGroupARNs.member")
	if len(arns) == 0 {
		return nullMember(CodeValidationError, "targetGroupARNs")
	}
	if err := r.lbCheckSpec(arns, nil); err != nil {
		return err
	}
	r.lbAttach(g, arns, nil)
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asDetachLoadBalancerTargetGroups(c *call) *APIError {
	g, err := r.asMutable(c.Form.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	arns := c.Form.List("TargetGroupARNs.member")
	if len(arns) == 0 {
		return nullMember(CodeValidationError, "targetGroupARNs")
	}
	r.lbDetach(g, arns, nil)
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asAttachLoadBalancers(c *call) *APIError {
	g, err := r.asMutable(c.Form.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	names := c.Form.List("LoadBalancerNames.member")
	if len(names) == 0 {
		return nullMember(CodeValidationError, "loadBalancerNames")
	}
	if err := r.lbCheckSpec(nil, names); err != nil {
		return err
	}
	r.lbAttach(g, nil, names)
	c.writeQuery(struct{}{})
	return nil
}

func (r *Region) asDetachLoadBalancers(c *call) *APIError {
	g, err := r.asMutable(c.Form.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	names := c.Form.List("LoadBalancerNames.member")
	if len(names) == 0 {
		return nullMember(CodeValidationError, "loadBalancerNames")
	}
	r.lbDetach(g, nil, names)
	c.writeQuery(struct{}{})
	return nil
}

// asLBKeys returns a group's attached keys followed by those being removed, sorted.
func (r *Region) asLBKeys(g *ASG, attached []string, isKey func(string) bool) []string {
	keys := append([]string(nil), attached...)
	var gone []string
	for k := range r.asgExtraOf(g).lb.removing {
		if isKey(k) && !asAnyOf(keys, k) {
			gone = append(gone, k)
		}
	}
	sort.Strings(gone)
	return append(keys, gone...)
}

func (r *Region) asDescribeLoadBalancerTargetGroups(c *call) *APIError {
	g, err := r.asGroupByName(c.Form.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	type item struct {
		LoadBalancerTargetGroupARN string `xml:"LoadBalancerTargetGroupARN"`
		State                      string `xml:"State"`
	}
	st := r.elb()
	out := asList[item]{Items: []item{}}
	for _, arn := range r.asLBKeys(g, g.TargetGroupARNs, func(k string) bool { return st.tgs[k] != nil }) {
		tg := st.tgs[arn]
		state := r.lbAttachmentState(g, arn, func(id string) bool { return tg != nil && r.tgTargetState(tg, id) == "healthy" })
		if state != "Removed" {
			out.Items = append(out.Items, item{arn, state})
		}
	}
	c.writeQuery(struct {
		LoadBalancerTargetGroups asList[item] `xml:"LoadBalancerTargetGroups"`
	}{out})
	return nil
}

func (r *Region) asDescribeLoadBalancers(c *call) *APIError {
	g, err := r.asGroupByName(c.Form.Get("AutoScalingGroupName"))
	if err != nil {
		return err
	}
	type item struct {
		LoadBalancerName string `xml:"LoadBalancerName"`
		State            string `xml:"State"`
	}
	st := r.elb()
	out := asList[item]{Items: []item{}}
	for _, n := range r.asLBKeys(g, r.asgExtraOf(g).lb.names, func(k string) bool { return st.clbs[k] != nil }) {
		lb := st.clbs[n]
		state := r.lbAttachmentState(g, n, func(id string) bool { return lb != nil && r.clbInstanceState(lb, id) == "InService" })
		if state != "Removed" {
			out.Items = append(out.Items, item{n, state})
		}
	}
	c.writeQuery(struct {
		LoadBalancers asList[item] `xml:"LoadBalancers"`
	}{out})
	return nil
}

// ScenarioTargetGroup is an ELBv2 target group that a scenario group registers its members with;
// it is created in the group's VPC when no target group of that name exists.
type ScenarioTargetGroup struct {
	Name string `yaml:"name"`
	Port int32  `yaml:"port"` // default 80
	// DeregistrationDelay is deregistration_delay.timeout_seconds; absent means AWS's 300.
	DeregistrationDelay *int32 `yaml:"deregistrationDelay"`
}

// ScenarioLoadBalancer is a Classic Load Balancer that a scenario group registers its members
// with.
type ScenarioLoadBalancer struct {
	Name string `yaml:"name"`
	// ConnectionDraining is the connection-draining timeout in seconds; absent leaves connection
	// draining disabled, as CreateLoadBalancer does.
	ConnectionDraining *int32 `yaml:"connectionDraining"`
}

// scenarioGroupExtras creates a scenario group's target groups and load balancers and puts them
// and its lifecycle hooks into spec.
func (r *Region) scenarioGroupExtras(g ScenarioGroup, spec *GroupSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	vpc := ""
	if len(spec.Subnets) > 0 {
		if sn := r.subnets[spec.Subnets[0]]; sn != nil {
			vpc = sn.VPCID
		}
	}
	for i, t := range g.TargetGroups {
		ts := TargetGroupSpec{Name: t.Name, Port: t.Port, VPCID: vpc}
		if t.DeregistrationDelay != nil {
			if *t.DeregistrationDelay < 0 || *t.DeregistrationDelay > 3600 {
				return fmt.Errorf("targetGroups[%d] (%s).deregistrationDelay: %d must be between 0 and 3600 seconds", i, t.Name, *t.DeregistrationDelay)
			}
			d := time.Duration(*t.DeregistrationDelay) * time.Second
			ts.DeregistrationDelay = &d
		}
		tg, err := r.tgNew(ts)
		if err != nil {
			return fmt.Errorf("targetGroups[%d] (%s): %w", i, t.Name, err)
		}
		if ts.DeregistrationDelay != nil {
			tg.attrs["deregistration_delay.timeout_seconds"] = fmt.Sprint(*t.DeregistrationDelay)
		}
		spec.TargetGroupARNs = append(spec.TargetGroupARNs, tg.arn)
	}
	for i, l := range g.LoadBalancers {
		ls := ClassicLBSpec{Name: l.Name}
		if l.ConnectionDraining != nil {
			if *l.ConnectionDraining < 1 || *l.ConnectionDraining > 3600 {
				return fmt.Errorf("loadBalancers[%d] (%s).connectionDraining: %d must be between 1 and 3600 seconds", i, l.Name, *l.ConnectionDraining)
			}
			d := time.Duration(*l.ConnectionDraining) * time.Second
			ls.ConnectionDraining = &d
		}
		if _, err := r.clbNew(ls); err != nil {
			return fmt.Errorf("loadBalancers[%d] (%s): %w", i, l.Name, err)
		}
		spec.LoadBalancerNames = append(spec.LoadBalancerNames, l.Name)
	}
	for i, h := range g.LifecycleHooks {
		hook, err := h.hook()
		if err != nil {
			return fmt.Errorf("lifecycleHooks[%d] (%s): %w", i, h.Name, err)
		}
		spec.LifecycleHooks = append(spec.LifecycleHooks, hook)
	}
	return nil
}
