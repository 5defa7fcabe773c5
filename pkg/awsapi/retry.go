package awsapi

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// RetryPolicy is spotmax's one retry policy for AWS calls, built once by the CLI's Factory and
// by the tests' clients alike. Retries live in the SDK's retryer only; the workflow never wraps
// a call in a retry loop of its own.
//
//   - Capacity errors (InsufficientInstanceCapacity and the rest of IsCapacity) are never retried:
//     EC2 answers several of them as server errors (HTTP 500), which the SDK would otherwise retry
//     as transient, holding a launch on a pool that has nothing to give instead of moving on to
//     the next option.
//   - Throttling and transient errors are retried with the SDK's jittered exponential backoff.
//   - There is no client-side retry quota (the SDK's token bucket): a burst of throttling on
//     other calls must not leave a replacement under a two-minute notice unable to retry.
type RetryPolicy struct {
	// MaxAttempts bounds the attempts of one call, the first included.
	MaxAttempts int
	// MaxBackoff bounds the wait between two attempts.
	MaxBackoff time.Duration
}

// DefaultRetryPolicy is the production policy: ten attempts (a throttled call should slow a
// replacement down, not fail it), backoff up to 20 s. AWS_MAX_ATTEMPTS overrides MaxAttempts.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 10, MaxBackoff: 20 * time.Second}
}

// NewRetryer returns a retryer implementing the policy; use it as aws.Config.Retryer.
func (p RetryPolicy) NewRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		if p.MaxAttempts > 0 {
			o.MaxAttempts = p.MaxAttempts
		}
		if p.MaxBackoff > 0 {
			o.MaxBackoff = p.MaxBackoff
		}
		o.RateLimiter = ratelimit.None
		o.Retryables = append([]retry.IsErrorRetryable{noCapacityRetry}, o.Retryables...)
	})
}

// Apply sets the policy's retryer on cfg. A RetryMaxAttempts already in cfg (AWS_MAX_ATTEMPTS,
// max_attempts in the profile) overrides MaxAttempts.
func (p RetryPolicy) Apply(cfg *aws.Config) {
	if cfg.RetryMaxAttempts > 0 {
		p.MaxAttempts = cfg.RetryMaxAttempts
	}
	cfg.Retryer = p.NewRetryer
	cfg.RetryMaxAttempts = 0 // the retryer's own MaxAttempts rules; clients would wrap it otherwise
}

// noCapacityRetry decides first: a capacity error is final for this (type, AZ, market) option.
var noCapacityRetry = retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
	if IsCapacity(err) {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
})
