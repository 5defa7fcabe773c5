package sim

import "time"

// AutoScalingBehaviors are the Auto Scaling behaviours of AWSBehaviors (see Behaviors). Lifecycle
// hooks and load-balancer draining need no switch: they act only on groups that have hooks,
// target groups or load balancers.
type AutoScalingBehaviors struct {
	// AttachVisibility is how long an instance attached with AttachInstances stays out of
	// DescribeAutoScalingGroups and DescribeAutoScalingInstances: Auto Scaling's API is eventually
	// consistent. 0 lists it at once.
	AttachVisibility time.Duration `yaml:"attachVisibility" json:"attachVisibility"`
	// AZRebalance turns on the AZRebalance process: a group whose members are unbalanced across
	// its Availability Zones (after an attach, a detach or a launch that fell back to another AZ)
	// launches in the zone with the fewest and then terminates in the zone with the most, unless
	// the group suspends AZRebalance (or Launch or Terminate).
	AZRebalance bool `yaml:"azRebalance" json:"azRebalance"`
}

// awsAttachVisibility is the eventual-consistency window after AttachInstances.
const awsAttachVisibility = 5 * time.Second

func awsAutoScalingBehaviors() AutoScalingBehaviors {
	return AutoScalingBehaviors{AttachVisibility: awsAttachVisibility, AZRebalance: true}
}
