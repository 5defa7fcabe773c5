package cli

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/pricing"

	"github.com/spotmax/spotmax/pkg/metrics"
)

// CloudWatch returns a CloudWatch client.
func (f *Factory) CloudWatch(ctx context.Context) (*cloudwatch.Client, error) {
	cfg, err := f.AWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	return cloudwatch.NewFromConfig(cfg), nil
}

// Logs returns a CloudWatch Logs client.
func (f *Factory) Logs(ctx context.Context) (*cloudwatchlogs.Client, error) {
	cfg, err := f.AWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	return cloudwatchlogs.NewFromConfig(cfg), nil
}

// pricingRegions are the regions that serve the Price List Query API; its prices cover every
// region.
var pricingRegions = map[string]bool{"us-east-1": true, "eu-central-1": true, "ap-south-1": true}

// Pricing returns a Price List Query API client: in the configured region when it serves the
// API, else in us-east-1 (the API's home). AWS_ENDPOINT_URL still applies.
func (f *Factory) Pricing(ctx context.Context) (*pricing.Client, error) {
	cfg, err := f.AWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	return pricing.NewFromConfig(cfg, func(o *pricing.Options) {
		if !pricingRegions[o.Region] {
			o.Region = "us-east-1"
		}
	}), nil
}

// actorName names the command acting, with its user and host, for the audit trail.
func actorName(command string) string {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s (%s@%s)", command, who, host)
}

// auditRecorders returns the CloudWatch publisher and the action log of a one-shot command, and
// a function that sends what they hold (at most 10 s) when the command is done.
func (f *Factory) auditRecorders(ctx context.Context, command string) (metrics.Multi, *metrics.ActionLog, func(), error) {
	cw, err := f.CloudWatch(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	logs, err := f.Logs(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	log := f.Logger()
	pub := metrics.NewPublisher(cw, metrics.PublisherOptions{Log: log})
	al := metrics.NewActionLog(logs, metrics.ActionLogOptions{Actor: actorName(command), Log: log})
	flush := func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := pub.Close(fctx); err != nil {
			log.Warn("publishing metrics to CloudWatch", "error", err)
		}
		if err := al.Close(fctx); err != nil {
			log.Warn("writing action records to CloudWatch Logs", "error", err)
		}
	}
	return metrics.Multi{pub, al}, al, flush, nil
}
