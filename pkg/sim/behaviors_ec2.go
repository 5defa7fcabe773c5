package sim

// EC2Behaviors are the EC2 behaviours of AWSBehaviors (see Behaviors).
type EC2Behaviors struct{}

func awsEC2Behaviors() EC2Behaviors { return EC2Behaviors{} }
