package sim_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/spotmax/spotmax/pkg/sim"
)

// TestASGMixedOverridesTemplatesAndWeights: an override with its own launch template launches
// from it, weights are shown per override and per member, and the on-demand base is kept.
func TestASGMixedOverridesTemplatesAndWeights(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	base := asgTemplate(env, "base", false)
	arm := env.Region().PutLaunchTemplate("arm", sim.LaunchTemplateData{ImageID: "ami-0aaaaaaaaaaaaaaaa", InstanceType: "m6g.large",
		Tags: map[string]sim.Tags{"instance": {"from-template": "arm"}}})
	// No spot m5.large anywhere: spot members come from the second override, with its template.
	for _, az := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
		env.Region().SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: az, Market: sim.MarketSpot}, 0)
	}
	_, err := c.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("mixed"),
		MinSize:              aws.Int32(0), MaxSize: aws.Int32(6), DesiredCapacity: aws.Int32(3),
		AvailabilityZones: []string{"us-east-1a", "us-east-1b", "us-east-1c"},
		MixedInstancesPolicy: &types.MixedInstancesPolicy{
			InstancesDistribution: &types.InstancesDistribution{OnDemandBaseCapacity: aws.Int32(1),
				OnDemandPercentageAboveBaseCapacity: aws.Int32(0), SpotAllocationStrategy: aws.String("capacity-optimized-prioritized")},
			LaunchTemplate: &types.LaunchTemplate{
				LaunchTemplateSpecification: &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(base)},
				Overrides: []types.LaunchTemplateOverrides{
					{InstanceType: aws.String("m5.large"), WeightedCapacity: aws.String("1")},
					{InstanceType: aws.String("m6g.large"), WeightedCapacity: aws.String("2"),
						LaunchTemplateSpecification: &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("arm")}},
				},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	g := waitGroup(t, env, c, "mixed", "3 InService", inService(3))
	od, spot := 0, 0
	for _, m := range g.Instances {
		in, _ := env.Region().Instance(aws.ToString(m.InstanceId))
		switch {
		case in.Market == sim.MarketOnDemand && in.Type == "m5.large" && in.LaunchTemplate.ID == base:
			od++
			if aws.ToString(m.WeightedCapacity) != "1" {
				t.Errorf("on-demand member %s WeightedCapacity = %q, want 1", in.ID, aws.ToString(m.WeightedCapacity))
			}
		case in.Market == sim.MarketSpot && in.Type == "m6g.large" && in.LaunchTemplate.ID == arm:
			spot++
			if aws.ToString(m.WeightedCapacity) != "2" || aws.ToString(m.LaunchTemplate.LaunchTemplateId) != arm {
				t.Errorf("spot member %s WeightedCapacity = %q, template %v; want 2 from %s", in.ID,
					aws.ToString(m.WeightedCapacity), aws.ToString(m.LaunchTemplate.LaunchTemplateId), arm)
			}
		default:
			t.Errorf("member %s: %s %s from template %+v", in.ID, in.Market, in.Type, in.LaunchTemplate)
		}
	}
	if od != 1 || spot != 2 {
		t.Errorf("on-demand %d, spot %d; want 1 and 2", od, spot)
	}
	ovs := g.MixedInstancesPolicy.LaunchTemplate.Overrides
	if len(ovs) != 2 || aws.ToString(ovs[1].WeightedCapacity) != "2" || ovs[1].LaunchTemplateSpecification == nil ||
		aws.ToString(ovs[1].LaunchTemplateSpecification.LaunchTemplateId) != arm || ovs[0].LaunchTemplateSpecification != nil {
		t.Errorf("Overrides = %+v", ovs)
	}
	if d := g.MixedInstancesPolicy.InstancesDistribution; aws.ToString(d.SpotAllocationStrategy) != "capacity-optimized-prioritized" ||
		aws.ToString(d.OnDemandAllocationStrategy) != "prioritized" {
		t.Errorf("InstancesDistribution = %+v", d)
	}
}

// TestASGMixedValidation: what CreateAutoScalingGroup and UpdateAutoScalingGroup refuse in a
// mixed instances policy, with Auto Scaling's code.
func TestASGMixedValidation(t *testing.T) {
	env, c := asgEnv(t)
	ctx := context.Background()
	lt := asgTemplate(env, "od", false)
	spotLT := asgTemplate(env, "spot", true)
	spec := func(d *types.InstancesDistribution, ovs ...types.LaunchTemplateOverrides) *types.MixedInstancesPolicy {
		return &types.MixedInstancesPolicy{InstancesDistribution: d, LaunchTemplate: &types.LaunchTemplate{
			LaunchTemplateSpecification: &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(lt)}, Overrides: ovs}}
	}
	typ := func(t string) types.LaunchTemplateOverrides {
		return types.LaunchTemplateOverrides{InstanceType: aws.String(t)}
	}
	weighted := func(t, w string) types.LaunchTemplateOverrides {
		return types.LaunchTemplateOverrides{InstanceType: aws.String(t), WeightedCapacity: aws.String(w)}
	}
	many := make([]types.LaunchTemplateOverrides, 41)
	for i := range many {
		many[i] = typ("m5.large")
	}
	tests := []struct {
		name   string
		policy *types.MixedInstancesPolicy
		msg    string
	}{
		{"weight 0", spec(nil, weighted("m5.large", "0")), "Invalid WeightedCapacity '0'"},
		{"weight 1000", spec(nil, weighted("m5.large", "1000")), "from 1 to 999"},
		{"weights on some", spec(nil, weighted("m5.large", "2"), typ("m6i.large")), "for all instance types"},
		{"duplicate type", spec(nil, typ("m5.large"), typ("m5.large")), "Duplicate instance type m5.large"},
		{"41 overrides", spec(nil, many...), "maximum of 40"},
		{"spot strategy", spec(&types.InstancesDistribution{SpotAllocationStrategy: aws.String("cheapest")}, typ("m5.large")), "SpotAllocationStrategy"},
		{"on-demand strategy", spec(&types.InstancesDistribution{OnDemandAllocationStrategy: aws.String("capacity-optimized")}, typ("m5.large")), "OnDemandAllocationStrategy"},
		{"percentage", spec(&types.InstancesDistribution{OnDemandPercentageAboveBaseCapacity: aws.Int32(101)}, typ("m5.large")), "between 0 and 100"},
		{"negative base", spec(&types.InstancesDistribution{OnDemandBaseCapacity: aws.Int32(-1)}, typ("m5.large")), "OnDemandBaseCapacity"},
		{"spot template in an override", spec(nil, typ("m5.large"), types.LaunchTemplateOverrides{InstanceType: aws.String("m6i.large"),
			LaunchTemplateSpecification: &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(spotLT)}}), "Incompatible launch template"},
		{"missing template in an override", spec(nil, types.LaunchTemplateOverrides{InstanceType: aws.String("m6i.large"),
			LaunchTemplateSpecification: &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("nope")}}), "template name nope, does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("bad"),
				MinSize: aws.Int32(0), MaxSize: aws.Int32(2), AvailabilityZones: []string{"us-east-1a"}, MixedInstancesPolicy: tt.policy})
			apiError(t, err, "ValidationError", tt.msg)
		})
	}
	if _, err := c.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("ok"),
		MinSize: aws.Int32(0), MaxSize: aws.Int32(2), AvailabilityZones: []string{"us-east-1a"},
		MixedInstancesPolicy: spec(nil, typ("m5.large"))}); err != nil {
		t.Fatal(err)
	}
	_, err := c.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("ok"),
		MixedInstancesPolicy: spec(nil, weighted("m5.large", "abc"))})
	apiError(t, err, "ValidationError", "Invalid WeightedCapacity 'abc'")
}
