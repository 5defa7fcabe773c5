package sim

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Elastic Load Balancing v2 target groups (API version 2015-12-01): the part Auto Scaling and
// spotmax use. Targets are instances; a registered target is "initial" until it has passed
// HealthyThresholdCount health checks HealthCheckIntervalSeconds apart, then "healthy"; a
// deregistered one is "draining" for deregistration_delay.timeout_seconds (300 by default) and
// then gone.

// TargetGroupSpec describes a target group to create, for callers inside the process.
type TargetGroupSpec struct {
	Name     string
	Protocol string // default HTTP
	Port     int32  // default 80
	VPCID    string // default: the default VPC
	// DeregistrationDelay is deregistration_delay.timeout_seconds; nil means 300 s.
	DeregistrationDelay *time.Duration
}

type targetGroup struct {
	arn, name, protocol, vpc string
	port                     int32
	created                  time.Time
	hcInterval, hcTimeout    int32
	hcHealthy, hcUnhealthy   int32
	hcPath                   string
	attrs                    map[string]string
	targets                  map[string]*tgTarget // by instance id
}

type tgTarget struct {
	id         string
	port       int32
	healthyAt  time.Time // when health checks will have passed
	drainUntil time.Time // zero unless draining
}

var tgNamePattern = lazyRegexp(`^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$`)

// Target group attributes that ModifyTargetGroupAttributes accepts, with their defaults.
var tgDefaultAttrs = map[string]string{
	"deregistration_delay.timeout_seconds":                           "300",
	"deregistration_delay.connection_termination.enabled":            "false",
	"stickiness.enabled":                                             "false",
	"stickiness.type":                                                "lb_cookie",
	"stickiness.lb_cookie.duration_seconds":                          "86400",
	"load_balancing.algorithm.type":                                  "round_robin",
	"slow_start.duration_seconds":                                    "0",
	"load_balancing.cross_zone.enabled":                              "use_load_balancer_configuration",
	"target_group_health.dns_failover.minimum_healthy_targets.count": "1",
}

var elbv2Actions = map[string]func(r *Region, c *call) *APIError{
	"CreateTargetGroup":             (*Region).tgCreate,
	"DescribeTargetGroups":          (*Region).tgDescribe,
	"DescribeTargetGroupAttributes": (*Region).tgDescribeAttributes,
	"ModifyTargetGroupAttributes":   (*Region).tgModifyAttributes,
	"DescribeTargetHealth":          (*Region).tgDescribeTargetHealth,
}

func tgNotFound() *APIError {
	return errf("TargetGroupNotFound", "One or more target groups not found")
}

// CreateTargetGroup creates a target group and returns its ARN.
func (r *Region) CreateTargetGroup(spec TargetGroupSpec) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tg, err := r.tgNew(spec)
	if err != nil {
		return "", err
	}
	return tg.arn, nil
}

func (r *Region) tgNew(spec TargetGroupSpec) (*targetGroup, *APIError) {
	if spec.Name == "" {
		return nil, nullMember(CodeValidationError, "name")
	}
	if !tgNamePattern().MatchString(spec.Name) {
		return nil, errf(CodeValidationError, "Target group name '%s' can only contain characters that are alphanumeric characters or hyphens(-)", spec.Name)
	}
	if spec.Protocol == "" {
		spec.Protocol = "HTTP"
	}
	if spec.Port == 0 {
		spec.Port = 80
	}
	if spec.Port < 1 || spec.Port > 65535 {
		return nil, errf(CodeValidationError, "1 validation error detected: Value '%d' at 'port' failed to satisfy constraint: Member must have value less than or equal to 65535", spec.Port)
	}
	if spec.VPCID == "" {
		for _, v := range r.vpcs {
			if v.IsDefault {
				spec.VPCID = v.ID
			}
		}
	}
	if r.vpcs[spec.VPCID] == nil {
		return nil, errf(CodeValidationError, "The VPC ID '%s' is not found", spec.VPCID)
	}
	st := r.elb()
	for _, o := range st.tgs {
		if o.name == spec.Name {
			if o.protocol == spec.Protocol && o.port == spec.Port && o.vpc == spec.VPCID {
				return o, nil
			}
			return nil, errf("DuplicateTargetGroupName", "A target group with the same name '%s' exists, but with different settings", spec.Name)
		}
	}
	b := make([]byte, 8)
	r.rng.Read(b)
	tg := &targetGroup{
		arn:      fmt.Sprintf("arn:aws:elasticloadbalancing:%s:%s:targetgroup/%s/%x", r.opts.Region, r.opts.AccountID, spec.Name, b),
		name:     spec.Name,
		protocol: spec.Protocol,
		port:     spec.Port,
		vpc:      spec.VPCID,
		created:  r.now(),
		// The defaults of an instance target group with HTTP health checks.
		hcInterval: 30, hcTimeout: 5, hcHealthy: 5, hcUnhealthy: 2, hcPath: "/",
		attrs:   map[string]string{},
		targets: map[string]*tgTarget{},
	}
	for k, v := range tgDefaultAttrs {
		tg.attrs[k] = v
	}
	if spec.DeregistrationDelay != nil {
		tg.attrs["deregistration_delay.timeout_seconds"] = strconv.Itoa(int(spec.DeregistrationDelay.Seconds()))
	}
	st.tgs[tg.arn] = tg
	return tg, nil
}

// tgDelay is the target group's deregistration delay.
func (tg *targetGroup) delay() time.Duration {
	n, _ := strconv.Atoi(tg.attrs["deregistration_delay.timeout_seconds"])
	return time.Duration(n) * time.Second
}

// tgRegister registers an instance (again); a draining target is registered anew.
func (r *Region) tgRegister(tg *targetGroup, id string, port int32) {
	if t := tg.targets[id]; t != nil && t.drainUntil.IsZero() {
		return
	}
	tg.targets[id] = &tgTarget{id: id, port: port,
		healthyAt: r.now().Add(time.Duration(tg.hcInterval*tg.hcHealthy) * time.Second)}
}

// tgDeregister starts draining a registered target and returns the delay; 0 when it was not
// registered.
func (r *Region) tgDeregister(tg *targetGroup, id string) time.Duration {
	t := tg.targets[id]
	if t == nil {
		return 0
	}
	if !t.drainUntil.IsZero() {
		return max(0, t.drainUntil.Sub(r.now()))
	}
	d := tg.delay()
	if d <= 0 {
		delete(tg.targets, id)
		return 0
	}
	t.drainUntil = r.now().Add(d)
	arn := tg.arn
	r.after(d, func() {
		cur := r.elb().tgs[arn]
		if cur == nil {
			return
		}
		if t2 := cur.targets[id]; t2 == t {
			delete(cur.targets, id)
		}
	})
	return d
}

// tgTargetState returns a target's health state as DescribeTargetHealth shows it.
func (r *Region) tgTargetState(tg *targetGroup, id string) string {
	s, _, _ := r.tgHealth(tg, id)
	return s
}

// tgHealth returns a target's state, reason and description.
func (r *Region) tgHealth(tg *targetGroup, id string) (state, reason, desc string) {
	t := tg.targets[id]
	if t == nil || (!t.drainUntil.IsZero() && !r.now().Before(t.drainUntil)) {
		return "unused", "Target.NotRegistered", "Target is not registered to the target group"
	}
	if !t.drainUntil.IsZero() {
		return "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"
	}
	in := r.instances[id]
	if in == nil || in.State != StateRunning {
		return "unused", "Target.InvalidState", "Target is in the stopped or terminated state"
	}
	if r.now().Before(t.healthyAt) {
		return "initial", "Elb.RegistrationInProgress", "Target registration is in progress"
	}
	return "healthy", "", ""
}

// TargetHealth returns a target's state in a target group ("" when the group does not exist).
func (r *Region) TargetHealth(tgARN, instanceID string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sched.runDue(r.clock.Now())
	tg := r.elb().tgs[tgARN]
	if tg == nil {
		return ""
	}
	return r.tgTargetState(tg, instanceID)
}

type tgOut struct {
	HealthCheckEnabled         bool           `xml:"HealthCheckEnabled"`
	HealthCheckIntervalSeconds int32          `xml:"HealthCheckIntervalSeconds"`
	HealthCheckPath            string         `xml:"HealthCheckPath"`
	HealthCheckPort            string         `xml:"HealthCheckPort"`
	HealthCheckProtocol        string         `xml:"HealthCheckProtocol"`
	HealthCheckTimeoutSeconds  int32          `xml:"HealthCheckTimeoutSeconds"`
	HealthyThresholdCount      int32          `xml:"HealthyThresholdCount"`
	IPAddressType              string         `xml:"IpAddressType"`
	LoadBalancerArns           asList[string] `xml:"LoadBalancerArns"`
	Matcher                    struct {
		HTTPCode string `xml:"HttpCode"`
	} `xml:"Matcher"`
	Port                    int32  `xml:"Port"`
	Protocol                string `xml:"Protocol"`
	ProtocolVersion         string `xml:"ProtocolVersion"`
	TargetGroupArn          string `xml:"TargetGroupArn"`
	TargetGroupName         string `xml:"TargetGroupName"`
	TargetType              string `xml:"TargetType"`
	UnhealthyThresholdCount int32  `xml:"UnhealthyThresholdCount"`
	VpcID                   string `xml:"VpcId"`
}

func (tg *targetGroup) out() tgOut {
	o := tgOut{HealthCheckEnabled: true, HealthCheckIntervalSeconds: tg.hcInterval, HealthCheckPath: tg.hcPath,
		HealthCheckPort: "traffic-port", HealthCheckProtocol: tg.protocol, HealthCheckTimeoutSeconds: tg.hcTimeout,
		HealthyThresholdCount: tg.hcHealthy, IPAddressType: "ipv4", LoadBalancerArns: asMembers([]string{}),
		Port: tg.port, Protocol: tg.protocol, ProtocolVersion: "HTTP1", TargetGroupArn: tg.arn, TargetGroupName: tg.name,
		TargetType: "instance", UnhealthyThresholdCount: tg.hcUnhealthy, VpcID: tg.vpc}
	o.Matcher.HTTPCode = "200"
	return o
}

func (r *Region) tgCreate(c *call) *APIError {
	p := c.Form
	port, _, err := asInt32(p, "Port")
	if err != nil {
		return err
	}
	if t := p.Get("TargetType"); t != "" && t != "instance" {
		return errf(CodeValidationError, "The simulated region serves target groups of target type 'instance' only, not '%s'.", t)
	}
	tg, err := r.tgNew(TargetGroupSpec{Name: p.Get("Name"), Protocol: p.Get("Protocol"), Port: port, VPCID: p.Get("VpcId")})
	if err != nil {
		return err
	}
	if n, ok, err := asInt32(p, "HealthCheckIntervalSeconds"); err != nil {
		return err
	} else if ok {
		if n < 5 || n > 300 {
			return errf(CodeValidationError, "Health check interval must be between 5 and 300 seconds")
		}
		tg.hcInterval = n
	}
	if n, ok, err := asInt32(p, "HealthyThresholdCount"); err != nil {
		return err
	} else if ok {
		if n < 2 || n > 10 {
			return errf(CodeValidationError, "Healthy threshold count must be between 2 and 10")
		}
		tg.hcHealthy = n
	}
	if path := p.Get("HealthCheckPath"); path != "" {
		tg.hcPath = path
	}
	c.writeQuery(struct {
		TargetGroups asList[tgOut] `xml:"TargetGroups"`
	}{asMembers([]tgOut{tg.out()})})
	return nil
}

func (r *Region) tgDescribe(c *call) *APIError {
	p := c.Form
	arns, names := p.List("TargetGroupArns.member"), p.List("Names.member")
	if len(arns) > 0 && len(names) > 0 {
		return errf(CodeValidationError, "Target group names and target group ARNs cannot be specified at the same time")
	}
	st := r.elb()
	var list []*targetGroup
	switch {
	case len(arns) > 0:
		for _, a := range arns {
			tg := st.tgs[a]
			if tg == nil {
				return tgNotFound()
			}
			list = append(list, tg)
		}
	case len(names) > 0:
		for _, n := range names {
			var found *targetGroup
			for _, tg := range st.tgs {
				if tg.name == n {
					found = tg
				}
			}
			if found == nil {
				return tgNotFound()
			}
			list = append(list, found)
		}
	default:
		for _, tg := range st.tgs {
			list = append(list, tg)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	}
	out := asList[tgOut]{Items: []tgOut{}}
	for _, tg := range list {
		out.Items = append(out.Items, tg.out())
	}
	c.writeQuery(struct {
		TargetGroups asList[tgOut] `xml:"TargetGroups"`
	}{out})
	return nil
}

func (r *Region) tgByARN(arn string) (*targetGroup, *APIError) {
	if arn == "" {
		return nil, nullMember(CodeValidationError, "targetGroupArn")
	}
	tg := r.elb().tgs[arn]
	if tg == nil {
		return nil, tgNotFound()
	}
	return tg, nil
}

type tgAttr struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

func (tg *targetGroup) attrList() asList[tgAttr] {
	keys := make([]string, 0, len(tg.attrs))
	for k := range tg.attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := asList[tgAttr]{Items: []tgAttr{}}
	for _, k := range keys {
		out.Items = append(out.Items, tgAttr{k, tg.attrs[k]})
	}
	return out
}

func (r *Region) tgDescribeAttributes(c *call) *APIError {
	tg, err := r.tgByARN(c.Form.Get("TargetGroupArn"))
	if err != nil {
		return err
	}
	c.writeQuery(struct {
		Attributes asList[tgAttr] `xml:"Attributes"`
	}{tg.attrList()})
	return nil
}

func (r *Region) tgModifyAttributes(c *call) *APIError {
	tg, err := r.tgByARN(c.Form.Get("TargetGroupArn"))
	if err != nil {
		return err
	}
	attrs := c.Form.Structs("Attributes.member")
	if len(attrs) == 0 {
		return nullMember(CodeValidationError, "attributes")
	}
	for _, a := range attrs {
		k, v := a.Get("Key"), a.Get("Value")
		if _, ok := tgDefaultAttrs[k]; !ok {
			return errf(CodeInvalidConfigurationRequest, "Target group attribute key '%s' is not recognized", k)
		}
		if k == "deregistration_delay.timeout_seconds" {
			n, e := strconv.Atoi(v)
			if e != nil || n < 0 || n > 3600 {
				return errf(CodeValidationError, "'deregistration_delay.timeout_seconds' must be a number between 0 and 3600 (got '%s')", v)
			}
		}
	}
	for _, a := range attrs {
		tg.attrs[a.Get("Key")] = a.Get("Value")
	}
	c.writeQuery(struct {
		Attributes asList[tgAttr] `xml:"Attributes"`
	}{tg.attrList()})
	return nil
}

// CodeInvalidConfigurationRequest is ELB's error code for an invalid attribute or setting.
const CodeInvalidConfigurationRequest = "InvalidConfigurationRequest"

type tgTargetParam struct {
	id   string
	port int32
}

func (r *Region) tgTargetsParam(p params) ([]tgTargetParam, *APIError) {
	var out []tgTargetParam
	for _, t := range p.Structs("Targets.member") {
		id := t.Get("Id")
		if id == "" {
			return nil, nullMember(CodeValidationError, "targets.member.id")
		}
		port, _, err := asInt32(t, "Port")
		if err != nil {
			return nil, err
		}
		out = append(out, tgTargetParam{id, port})
	}
	return out, nil
}

func (r *Region) tgDescribeTargetHealth(c *call) *APIError {
	tg, err := r.tgByARN(c.Form.Get("TargetGroupArn"))
	if err != nil {
		return err
	}
	targets, err := r.tgTargetsParam(c.Form)
	if err != nil {
		return err
	}
	type health struct {
		Description string `xml:"Description,omitempty"`
		Reason      string `xml:"Reason,omitempty"`
		State       string `xml:"State"`
	}
	type desc struct {
		HealthCheckPort string `xml:"HealthCheckPort"`
		Target          struct {
			ID   string `xml:"Id"`
			Port int32  `xml:"Port"`
		} `xml:"Target"`
		TargetHealth health `xml:"TargetHealth"`
	}
	if len(targets) == 0 {
		ids := make([]string, 0, len(tg.targets))
		for id := range tg.targets {
			if r.tgRegistered(tg, id) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			targets = append(targets, tgTargetParam{id: id, port: tg.targets[id].port})
		}
	} else {
		for _, t := range targets {
			if r.instances[t.id] == nil {
				return errf("InvalidTarget", "The following targets are not valid instances: '%s'", t.id)
			}
		}
	}
	out := asList[desc]{Items: []desc{}}
	for _, t := range targets {
		var d desc
		d.Target.ID = t.id
		d.Target.Port = t.port
		if d.Target.Port == 0 {
			d.Target.Port = tg.port
			if reg := tg.targets[t.id]; reg != nil {
				d.Target.Port = reg.port
			}
		}
		d.HealthCheckPort = strconv.Itoa(int(d.Target.Port))
		d.TargetHealth.State, d.TargetHealth.Reason, d.TargetHealth.Description = r.tgHealth(tg, t.id)
		out.Items = append(out.Items, d)
	}
	c.writeQuery(struct {
		TargetHealthDescriptions asList[desc] `xml:"TargetHealthDescriptions"`
	}{out})
	return nil
}

// tgRegistered reports whether a target is registered or still draining.
func (r *Region) tgRegistered(tg *targetGroup, id string) bool {
	t := tg.targets[id]
	return t != nil && (t.drainUntil.IsZero() || r.now().Before(t.drainUntil))
}
