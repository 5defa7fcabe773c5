package cli

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/spotmax/spotmax/pkg/controller"
	sqssource "github.com/spotmax/spotmax/pkg/source/sqs"
)

// sqsSource returns the EventBridge-on-SQS source for `spotmax run --queue-url`: messages about
// instances outside managed groups are dropped by the controller's instance filter.
func sqsSource(ctx context.Context, f *Factory, queueURL string, c *controller.Controller) (controller.Source, error) {
	cfg, err := f.AWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	return &sqssource.Source{Client: sqs.NewFromConfig(cfg), QueueURL: queueURL, Filter: c.ManagedInstances, Log: f.Logger()}, nil
}
