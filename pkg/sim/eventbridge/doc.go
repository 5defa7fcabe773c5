// Package eventbridge is the simulated EventBridge: rules with event patterns on the default event bus, SQS queues as
// targets, and delivery of the region's own events (EC2 interruption warnings, rebalance
// recommendations and state changes, Auto Scaling launch failures) to the queues of every
// enabled rule that matches, subject to the queue's access policy as on AWS.
//
// The region hands it each of its events through Dispatch (EC2 and Auto Scaling publish, the
// rules match); it reaches SQS through the small Queues interface (pkg/sim/sqs implements it).
package eventbridge
