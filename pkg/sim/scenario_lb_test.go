package sim

import (
	"strings"
	"testing"
	"time"
)

func TestScenarioGroupHooksTargetGroupsAndLoadBalancers(t *testing.T) {
	s, err := ParseScenario([]byte(`
region: us-east-1
launchTemplates:
  - {name: od, imageId: ami-0abcdef1234567890, instanceType: t3.micro}
groups:
  - name: web
    launchTemplate: od
    min: 1
    max: 2
    subnets: us-east-1a
    lifecycleHooks:
      - {name: warm, transition: launch, heartbeatTimeout: 60, defaultResult: CONTINUE}
    targetGroups:
      - {name: web-tg, port: 8080, deregistrationDelay: 30}
    loadBalancers:
      - {name: web-clb, connectionDraining: 20}
`))
	if err != nil {
		t.Fatal(err)
	}
	srv := startScenario(t, s)
	r := srv.Region()
	settle(r)
	g, _ := r.Group("web")
	if len(g.Members) != 1 || g.Members[0].LifecycleState != LifecyclePendingWait {
		t.Fatalf("members = %+v, want one in Pending:Wait", g.Members)
	}
	hooks := r.LifecycleHooks("web")
	if len(hooks) != 1 || hooks[0].Name != "warm" || hooks[0].Transition != TransitionLaunching || hooks[0].HeartbeatTimeout != 60 {
		t.Fatalf("hooks = %+v", hooks)
	}
	r.Advance(61 * time.Second)
	r.Advance(time.Second) // Pending:Proceed → InService at the next step
	g, _ = r.Group("web")
	if g.Members[0].LifecycleState != LifecycleInService {
		t.Fatalf("after the heartbeat timeout with CONTINUE: %s, want InService", g.Members[0].LifecycleState)
	}
	id := g.Members[0].InstanceID
	if len(g.TargetGroupARNs) != 1 || !strings.Contains(g.TargetGroupARNs[0], ":targetgroup/web-tg/") {
		t.Fatalf("target groups = %v", g.TargetGroupARNs)
	}
	if h := r.TargetHealth(g.TargetGroupARNs[0], id); h != "initial" {
		t.Errorf("target health = %q, want initial", h)
	}
	if h := r.ClassicInstanceHealth("web-clb", id); h != "OutOfService" {
		t.Errorf("classic health = %q, want OutOfService", h)
	}
	var delay time.Duration
	r.Do(func() {
		gg := r.asgs["web"]
		delay = r.lbDeregisterMember(gg, id)
	})
	if delay != 30*time.Second {
		t.Errorf("drain delay = %v, want the longer of 30 s (target group) and 20 s (classic)", delay)
	}

	_, err = ParseScenario([]byte(`
region: us-east-1
launchTemplates:
  - {name: od, imageId: ami-0abcdef1234567890, instanceType: t3.micro}
groups:
  - name: web
    launchTemplate: od
    max: 1
    lifecycleHooks:
      - {name: warm, transition: launch, heartbeat: 60}
`))
	if err == nil || !strings.Contains(err.Error(), "heartbeat") {
		t.Errorf("unknown hook field: err = %v, want it named", err)
	}
	bad, err := ParseScenario([]byte(`
region: us-east-1
launchTemplates:
  - {name: od, imageId: ami-0abcdef1234567890, instanceType: t3.micro}
groups:
  - name: web
    launchTemplate: od
    max: 1
    lifecycleHooks:
      - {name: warm, transition: reboot}
`))
	if err != nil {
		t.Fatal(err)
	}
	r2 := New(bad.Options())
	if err := bad.Apply(r2); err == nil || !strings.Contains(err.Error(), `group web: lifecycleHooks[0] (warm): transition "reboot"`) {
		t.Errorf("bad transition: err = %v", err)
	}
}

func TestScenarioAutoScalingBehaviors(t *testing.T) {
	s, err := ParseScenario([]byte(`
region: us-east-1
behaviors: {base: kind, autoscaling: {attachVisibility: 3s, azRebalance: true}}
`))
	if err != nil {
		t.Fatal(err)
	}
	b := s.Options().Behaviors
	if b == nil || b.AutoScaling.AttachVisibility != 3*time.Second || !b.AutoScaling.AZRebalance {
		t.Fatalf("behaviors = %+v", b)
	}
	if aws := AWSBehaviors().AutoScaling; aws.AttachVisibility != 5*time.Second || !aws.AZRebalance {
		t.Errorf("AWSBehaviors().AutoScaling = %+v, want every switch on", aws)
	}
	if kind := KindBehaviors().AutoScaling; kind.AttachVisibility != 0 || kind.AZRebalance {
		t.Errorf("KindBehaviors().AutoScaling = %+v, want every switch off", kind)
	}
	if _, err := (ScenarioBehaviors{AutoScaling: map[string]any{"azRebalancing": true}}).Resolve(); err == nil || !strings.Contains(err.Error(), "azRebalancing") {
		t.Errorf("unknown autoscaling behaviour: err = %v, want it named", err)
	}
}

func TestControlAutoScalingBehaviors(t *testing.T) {
	srv := startControl(t, Options{})
	var out map[string]any
	if code := control(t, srv, "PUT", "/_sim/behaviors", `{"autoscaling":{"attachVisibility":3000000000,"azRebalance":true}}`, &out); code != 200 {
		t.Fatalf("PUT /_sim/behaviors: %d %v", code, out)
	}
	if b := srv.Region().Behaviors().AutoScaling; b.AttachVisibility != 3*time.Second || !b.AZRebalance {
		t.Errorf("behaviors after PUT = %+v", b)
	}
	if code := control(t, srv, "GET", "/_sim/behaviors", "", &out); code != 200 {
		t.Fatalf("GET /_sim/behaviors: %d", code)
	}
	as, _ := out["autoscaling"].(map[string]any)
	if as["azRebalance"] != true || as["attachVisibility"] != float64(3*time.Second) {
		t.Errorf("GET /_sim/behaviors autoscaling = %v", as)
	}
}
