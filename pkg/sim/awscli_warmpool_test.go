package sim_test

import (
	"strings"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/sim"
)

// TestAWSCLIWarmPoolAndMixedOverrides: the aws CLI's put-warm-pool, describe-warm-pool and
// delete-warm-pool, describe-auto-scaling-groups' WarmPoolConfiguration, and a mixed instances
// policy with a per-override template and weights as the CLI sends and reads it.
func TestAWSCLIWarmPoolAndMixedOverrides(t *testing.T) {
	e := startCLI(t)
	e.Region().PutLaunchTemplate("web", sim.LaunchTemplateData{ImageID: testAMI, InstanceType: "m5.large"})
	e.Region().PutLaunchTemplate("arm", sim.LaunchTemplateData{ImageID: testAMI, InstanceType: "m6g.large"})
	e.Run(nil, "autoscaling", "create-auto-scaling-group", "--auto-scaling-group-name", "web",
		"--launch-template", "LaunchTemplateName=web", "--min-size", "0", "--max-size", "3", "--desired-capacity", "1",
		"--availability-zones", "us-east-1a")
	e.Run(nil, "autoscaling", "put-warm-pool", "--auto-scaling-group-name", "web", "--min-size", "1",
		"--pool-state", "Stopped", "--instance-reuse-policy", "ReuseOnScaleIn=true")
	type pool struct {
		WarmPoolConfiguration *struct {
			MinSize             int
			PoolState, Status   string
			InstanceReusePolicy struct{ ReuseOnScaleIn bool }
		}
		Instances []struct {
			InstanceId, LifecycleState, AvailabilityZone string
		}
	}
	var p pool
	for i := 0; i < 120; i++ {
		e.Run(&p, "autoscaling", "describe-warm-pool", "--auto-scaling-group-name", "web")
		stopped := 0
		for _, in := range p.Instances {
			if in.LifecycleState == "Warmed:Stopped" {
				stopped++
			}
		}
		if stopped == 2 {
			break
		}
		e.Region().Advance(5 * time.Second)
	}
	if c := p.WarmPoolConfiguration; c == nil || c.MinSize != 1 || c.PoolState != "Stopped" || !c.InstanceReusePolicy.ReuseOnScaleIn {
		t.Errorf("WarmPoolConfiguration = %+v", c)
	}
	if len(p.Instances) != 2 || p.Instances[0].LifecycleState != "Warmed:Stopped" || p.Instances[0].AvailabilityZone != "us-east-1a" {
		t.Errorf("warm pool instances = %+v; want 2 Warmed:Stopped in us-east-1a", p.Instances)
	}
	var groups struct {
		AutoScalingGroups []struct {
			WarmPoolSize          int
			WarmPoolConfiguration *struct{ PoolState string }
		}
	}
	e.Run(&groups, "autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names", "web")
	if g := groups.AutoScalingGroups; len(g) != 1 || g[0].WarmPoolSize != 2 || g[0].WarmPoolConfiguration == nil {
		t.Errorf("describe-auto-scaling-groups = %+v", g)
	}
	if msg := e.Fail("autoscaling", "put-warm-pool", "--auto-scaling-group-name", "web", "--pool-state", "Frozen"); !strings.Contains(msg, "Frozen") {
		t.Errorf("put-warm-pool --pool-state Frozen: %s", msg)
	}
	e.Run(nil, "autoscaling", "delete-warm-pool", "--auto-scaling-group-name", "web", "--force-delete")
	p = pool{}
	e.Run(&p, "autoscaling", "describe-warm-pool", "--auto-scaling-group-name", "web")
	if p.WarmPoolConfiguration != nil || len(p.Instances) != 0 {
		t.Errorf("after delete-warm-pool --force-delete: %+v", p)
	}

	e.Run(nil, "autoscaling", "create-auto-scaling-group", "--auto-scaling-group-name", "mixed", "--min-size", "0", "--max-size", "2",
		"--availability-zones", "us-east-1a", "--mixed-instances-policy",
		`{"LaunchTemplate":{"LaunchTemplateSpecification":{"LaunchTemplateName":"web"},"Overrides":[`+
			`{"InstanceType":"m5.large","WeightedCapacity":"1"},`+
			`{"InstanceType":"m6g.large","WeightedCapacity":"2","LaunchTemplateSpecification":{"LaunchTemplateName":"arm"}}]},`+
			`"InstancesDistribution":{"OnDemandBaseCapacity":1,"OnDemandPercentageAboveBaseCapacity":0}}`)
	var mixed struct {
		AutoScalingGroups []struct {
			MixedInstancesPolicy struct {
				LaunchTemplate struct {
					Overrides []struct {
						InstanceType, WeightedCapacity string
						LaunchTemplateSpecification    *struct{ LaunchTemplateName string }
					}
				}
				InstancesDistribution struct{ OnDemandBaseCapacity int }
			}
		}
	}
	e.Run(&mixed, "autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names", "mixed")
	if len(mixed.AutoScalingGroups) != 1 {
		t.Fatalf("describe-auto-scaling-groups mixed = %+v", mixed)
	}
	ovs := mixed.AutoScalingGroups[0].MixedInstancesPolicy.LaunchTemplate.Overrides
	if len(ovs) != 2 || ovs[1].WeightedCapacity != "2" || ovs[1].LaunchTemplateSpecification == nil ||
		ovs[1].LaunchTemplateSpecification.LaunchTemplateName != "arm" {
		t.Errorf("overrides = %+v", ovs)
	}
	msg := e.Fail("autoscaling", "put-warm-pool", "--auto-scaling-group-name", "mixed")
	if !strings.Contains(msg, "ValidationError") || !strings.Contains(msg, "mixed instances policy") {
		t.Errorf("put-warm-pool on a mixed instances group: %s", msg)
	}
}
