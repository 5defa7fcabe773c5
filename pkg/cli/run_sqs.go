package cli

import (
	"context"

	"github.com/spotmax/spotmax/pkg/controller"
)

// sqsSource returns the EventBridge-on-SQS source for `spotmax run --queue-url`.
func sqsSource(ctx context.Context, f *Factory, queueURL string, c *controller.Controller) (controller.Source, error) {
	return nil, flagErrorf("--queue-url: the SQS event source is not built into this version yet")
}
