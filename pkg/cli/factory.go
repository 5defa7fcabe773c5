package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/replace"
	"github.com/spotmax/spotmax/pkg/replace/steps"
	"github.com/spotmax/spotmax/pkg/replace/steps/k8sdrain"
)

// Factory hands out what commands need, lazily, so that --help and flag errors build nothing.
type Factory struct {
	IO *IOStreams

	// Global flags.
	Region   string
	Profile  string
	Output   string
	LogLevel string
	// PollInterval is the first interval of status polls; they back off to 15× it.
	PollInterval time.Duration

	// Getenv reads the environment; tests replace it.
	Getenv func(string) string

	cfgOnce sync.Once
	cfg     aws.Config
	cfgErr  error
	log     *slog.Logger
}

// NewFactory returns a factory for the process's streams and environment.
func NewFactory(ios *IOStreams) *Factory {
	return &Factory{IO: ios, Output: OutputTable, LogLevel: "info", Getenv: os.Getenv}
}

// AWSConfig loads the AWS configuration once, from the standard chain (environment, shared
// config and profiles, SSO, the instance's IAM role), so AWS_ENDPOINT_URL and AWS_PROFILE work
// as with any AWS tool.
func (f *Factory) AWSConfig(ctx context.Context) (aws.Config, error) {
	f.cfgOnce.Do(func() {
		var opts []func(*config.LoadOptions) error
		if f.Region != "" {
			opts = append(opts, config.WithRegion(f.Region))
		}
		if f.Profile != "" {
			opts = append(opts, config.WithSharedConfigProfile(f.Profile))
		}
		cfg, err := loadConfigIMDSv2(ctx, opts)
		if err != nil {
			f.cfgErr = &ConfigError{fmt.Errorf("loading AWS configuration: %w", err)}
			return
		}
		if cfg.Region == "" {
			f.cfgErr = &ConfigError{fmt.Errorf("no AWS region: set --region, AWS_REGION, or a region in the profile")}
			return
		}
		// Resolve credentials now, so that missing ones are one clear error instead of the SDK's
		// chain of provider messages on the first call.
		if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
			f.Logger().Debug("resolving AWS credentials", "error", err)
			f.cfgErr = &ConfigError{errNoCredentials}
			return
		}
		// The one retry policy (capacity errors final, throttling retried by the SDK only, no
		// client-side retry quota); AWS_MAX_ATTEMPTS overrides its attempts.
		awsapi.DefaultRetryPolicy().Apply(&cfg)
		f.cfg = cfg
	})
	return f.cfg, f.cfgErr
}

// loadConfigIMDSv2 loads the standard chain with an instance-metadata client that uses IMDSv2
// only. The SDK's own client falls back to IMDSv1 when a token cannot be had (a 403 from a
// proxied request, a hop limit that drops the token's response, a timeout): unauthenticated
// GETs that an SSRF relay can make too. A first load reads the settings the metadata client
// honours (AWS_EC2_METADATA_SERVICE_ENDPOINT, the profile's ec2_metadata_service_endpoint,
// AWS_EC2_METADATA_DISABLED, ...); it makes no request. Region never comes from IMDS: it is
// --region, AWS_REGION or the profile's.
func loadConfigIMDSv2(ctx context.Context, opts []func(*config.LoadOptions) error) (aws.Config, error) {
	base, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, err
	}
	client := imds.NewFromConfig(base, func(o *imds.Options) { o.EnableFallback = aws.FalseTernary })
	opts = append(slices.Clone(opts), config.WithEC2RoleCredentialOptions(func(o *ec2rolecreds.Options) { o.Client = client }))
	return config.LoadDefaultConfig(ctx, opts...)
}

// EC2 returns an EC2 client.
func (f *Factory) EC2(ctx context.Context) (*ec2.Client, error) {
	cfg, err := f.AWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	return ec2.NewFromConfig(cfg), nil
}

// AutoScaling returns an Auto Scaling client.
func (f *Factory) AutoScaling(ctx context.Context) (*autoscaling.Client, error) {
	cfg, err := f.AWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	return autoscaling.NewFromConfig(cfg), nil
}

// Lister returns an inventory lister with the factory's clients.
func (f *Factory) Lister(ctx context.Context) (*inventory.Lister, error) {
	ec2c, err := f.EC2(ctx)
	if err != nil {
		return nil, err
	}
	asg, err := f.AutoScaling(ctx)
	if err != nil {
		return nil, err
	}
	return &inventory.Lister{ASG: asg, EC2: ec2c}, nil
}

// Workflow returns a replacement workflow with the factory's clients, steps and logger.
func (f *Factory) Workflow(ctx context.Context) (*replace.Workflow, error) {
	ec2c, err := f.EC2(ctx)
	if err != nil {
		return nil, err
	}
	asg, err := f.AutoScaling(ctx)
	if err != nil {
		return nil, err
	}
	return &replace.Workflow{EC2: ec2c, ASG: asg, Steps: f.PreDetachSteps(ec2c), Log: f.Logger(),
		PollMin: f.PollInterval, PollMax: 15 * f.PollInterval}, nil
}

// PreDetachSteps returns the steps a replacement runs before detaching the old instance, as
// package replace/steps registers them.
func (f *Factory) PreDetachSteps(ec2c k8sdrain.InstanceDescriber) []replace.PreDetach {
	return steps.PreDetach(steps.Deps{EC2: ec2c, Log: f.Logger()})
}

// Logger returns the logger: text on a terminal, JSON under systemd (INVOCATION_ID set) or when
// stderr is not a terminal and SPOTMAX_LOG_FORMAT=json.
func (f *Factory) Logger() *slog.Logger {
	if f.log != nil {
		return f.log
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(f.LogLevel))
	hopts := &slog.HandlerOptions{Level: level}
	format := strings.ToLower(f.Getenv("SPOTMAX_LOG_FORMAT"))
	if format == "" && f.Getenv("INVOCATION_ID") != "" {
		format = "json"
	}
	if format == "json" {
		f.log = slog.New(slog.NewJSONHandler(f.IO.ErrOut, hopts))
	} else {
		f.log = slog.New(slog.NewTextHandler(f.IO.ErrOut, hopts))
	}
	return f.log
}

// confirm asks a yes/no question on a terminal. Without a terminal it refuses, so that scripts
// must pass --yes.
func (f *Factory) confirm(question string) error {
	if !f.IO.InTTY || !f.IO.ErrTTY {
		return flagErrorf("%s: not on a terminal, pass --yes to go ahead", question)
	}
	fmt.Fprintf(f.IO.ErrOut, "%s [y/N] ", question)
	var answer string
	_, _ = fmt.Fscanln(f.IO.In, &answer)
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return ErrCancelled
}
