package sim

import (
	"github.com/spotmax/spotmax/pkg/sim/cloudwatch"
	"github.com/spotmax/spotmax/pkg/sim/eventbridge"
	"github.com/spotmax/spotmax/pkg/sim/logs"
	"github.com/spotmax/spotmax/pkg/sim/sqs"
)

// The region's view of the services in packages of their own: what tests and the control API
// read of them, under the names callers have always used.

// LogEvent is one event of a simulated log stream.
type LogEvent = logs.Event

// LogEvents returns the events of a CloudWatch Logs log group, oldest first, for tests.
func (r *Region) LogEvents(group string) []LogEvent { return r.logs.Events(group) }

// MetricDatum is one datapoint that PutMetricData stored, as a statistic set.
type MetricDatum = cloudwatch.Datum

// MetricData returns copies of the CloudWatch datapoints stored in a namespace ("" for every
// namespace), ordered by namespace, metric name, dimensions and timestamp.
func (r *Region) MetricData(namespace string) []MetricDatum { return r.cloudwatch.Data(namespace) }

// Dashboard returns the body of a CloudWatch dashboard that PutDashboard stored.
func (r *Region) Dashboard(name string) (string, bool) { return r.cloudwatch.Dashboard(name) }

// QueueMessage is a message in a simulated SQS queue.
type QueueMessage = sqs.Message

// QueueMessages returns copies of the messages in an SQS queue, in send order; nil if there is no
// such queue.
func (r *Region) QueueMessages(queueName string) []QueueMessage { return r.sqs.Messages(queueName) }

// SendQueueMessage sends a message to an SQS queue, as SendMessage does.
func (r *Region) SendQueueMessage(queueName, body string) error { return r.sqs.Send(queueName, body) }

// sqsDeliver sends a message to a queue given by name or ARN, with the lock held (lifecycle hook
// notifications).
func (r *Region) sqsDeliver(queue, body string) (string, error) { return r.sqs.Deliver(queue, body) }

// EventDelivery is one attempt of the simulated EventBridge to deliver an event to a rule's
// target.
type EventDelivery = eventbridge.Delivery

// EventDeliveries returns the latest delivery attempts of EventBridge rules (up to 1000), oldest
// first, including failed ones with the reason.
func (r *Region) EventDeliveries() []EventDelivery { return r.eventbridge.Deliveries() }

// RuleARN returns the ARN of the EventBridge rule name on the default event bus, whether or not
// it exists yet (for queue policies written before the rule).
func (r *Region) RuleARN(name string) string { return r.eventbridge.RuleARN(name) }
