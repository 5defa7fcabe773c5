package consulstep

import "github.com/spotmax/spotmax/pkg/metrics"

// MetricName is the event the replacement workflow records when the step succeeds.
func (s *Step) MetricName() metrics.Name { return metrics.ConsulDeregistered }
