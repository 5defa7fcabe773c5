// Package sim is a simulated AWS region served over HTTP, in the spirit of LocalStack.
//
// It owns the state of one region (availability zones, subnets, launch templates, instances,
// EBS volumes, Auto Scaling groups, CloudWatch metrics, SQS queues) and speaks the real wire
// protocols of EC2 (query/XML), Auto Scaling (query/XML), CloudWatch (rpc-v2-cbor, query and
// JSON), SQS (JSON 1.0) and EventBridge (JSON 1.1, delivering EC2 and Auto Scaling events to SQS
// targets) on one loopback port, routing each request by the service in its SigV4
// credential scope. Unmodified AWS clients reach it through AWS_ENDPOINT_URL with dummy
// credentials.
//
// Behaviour follows AWS where spotmax depends on it: instance state latencies, spot versus
// on-demand lifecycle, capacity per (instance type, AZ, market) pool, Auto Scaling groups that keep
// their desired count, EBS attachment states and AZ rules, DeleteOnTermination, spot interruption
// notices followed by termination, rebalance recommendations and throttling. Time runs on a scaled
// Clock so that minutes pass in seconds. Every instance can get its own IMDS endpoint on a loopback
// port, and a control API under /_sim/ lists instances and injects faults.
package sim
