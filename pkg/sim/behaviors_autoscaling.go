package sim

// AutoScalingBehaviors are the Auto Scaling behaviours of AWSBehaviors (see Behaviors).
type AutoScalingBehaviors struct{}

func awsAutoScalingBehaviors() AutoScalingBehaviors { return AutoScalingBehaviors{} }
