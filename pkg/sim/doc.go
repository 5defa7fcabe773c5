// Package sim is a simulated AWS region served over HTTP, in the spirit of LocalStack.
//
// It owns the state of one region (availability zones, subnets, launch templates, instances,
// EBS volumes, Auto Scaling groups, load balancers) and speaks the real wire protocols of EC2
// (query/XML), Auto Scaling (query/XML) and Elastic Load Balancing (query/XML) on one loopback
// port; CloudWatch (rpc-v2-cbor, query and JSON), SQS (JSON 1.0 and query), CloudWatch Logs and
// EventBridge (JSON 1.1, delivering EC2 and Auto Scaling events to SQS targets) and the Price
// List API are served on the same port by their own packages. Unmodified AWS clients reach it
// through AWS_ENDPOINT_URL with dummy credentials.
//
// Layout: pkg/sim/awsproto is the protocol kernel (routing by the service in the SigV4
// credential scope, the codecs, AWS errors); pkg/sim/sqs, cloudwatch, logs, eventbridge and
// pricing are one service each, owning its state, registered by Region.setupServices
// (server.go). EC2, Auto Scaling and ELB stay in this package because they share one model of
// instances, groups and targets. This package keeps the facade callers use: New, Start, Serve,
// Options, Behaviors, the Region's methods and the control API.
//
// Behaviour follows AWS where spotmax depends on it: instance state latencies, spot versus
// on-demand lifecycle, capacity per (instance type, AZ, market) pool, Auto Scaling groups that keep
// their desired count, EBS attachment states and AZ rules, DeleteOnTermination, spot interruption
// notices followed by termination, rebalance recommendations and throttling. Time runs on a scaled
// Clock so that minutes pass in seconds. Every instance can get its own IMDS endpoint on a loopback
// port, and a control API under /_sim/ lists instances and injects faults.
package sim
