package kube

import "github.com/spotmax/spotmax/pkg/metrics"

// Metric is the event the replacement workflow records when the step succeeds.
func (s *Step) Metric() metrics.Name { return metrics.NodeDrained }
