package awsapi

import (
	"errors"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// apiError is an AWS error as the SDK hands it to the retryer: the service's code inside the
// HTTP response error.
func apiError(status int, code string) error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      &smithy.GenericAPIError{Code: code, Message: "test"},
	}}
}

func TestRetryPolicy(t *testing.T) {
	r := DefaultRetryPolicy().NewRetryer()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		// EC2 answers capacity errors as server errors; retrying them only delays the next option.
		{apiError(500, "InsufficientInstanceCapacity"), false},
		{apiError(500, "InsufficientCapacity"), false},
		{apiError(500, "InsufficientHostCapacity"), false},
		{apiError(400, "MaxSpotInstanceCountExceeded"), false},
		{apiError(400, "SpotMaxPriceTooLow"), false},
		{apiError(503, "RequestLimitExceeded"), true},
		{apiError(400, "Throttling"), true},
		{apiError(500, "InternalError"), true},
		{apiError(503, "Unavailable"), true},
		{apiError(400, "InvalidParameterValue"), false},
		{apiError(400, "InvalidInstanceID.NotFound"), false},
	} {
		var api smithy.APIError
		errors.As(tc.err, &api)
		if got := r.IsErrorRetryable(tc.err); got != tc.want {
			t.Errorf("%s: retryable = %v, want %v", api.ErrorCode(), got, tc.want)
		}
	}
	if got := r.MaxAttempts(); got != 10 {
		t.Errorf("MaxAttempts = %d, want 10", got)
	}
}

func TestRetryPolicyApply(t *testing.T) {
	cfg := aws.Config{RetryMaxAttempts: 4} // AWS_MAX_ATTEMPTS=4
	DefaultRetryPolicy().Apply(&cfg)
	if cfg.RetryMaxAttempts != 0 || cfg.Retryer == nil {
		t.Fatalf("Apply left RetryMaxAttempts=%d, Retryer set=%v", cfg.RetryMaxAttempts, cfg.Retryer != nil)
	}
	if got := cfg.Retryer().MaxAttempts(); got != 4 {
		t.Errorf("MaxAttempts = %d, want AWS_MAX_ATTEMPTS's 4", got)
	}
	// Capacity stays final whatever the attempts.
	if cfg.Retryer().IsErrorRetryable(apiError(500, "InsufficientInstanceCapacity")) {
		t.Error("capacity error retryable after Apply")
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err                                     error
		capacity, throttled, notFound, badState bool
	}{
		{err: apiError(500, "InsufficientInstanceCapacity"), capacity: true},
		{err: apiError(503, "RequestLimitExceeded"), throttled: true},
		{err: apiError(400, "InvalidInstanceID.NotFound"), notFound: true},
		{err: apiError(400, "InvalidVolume.NotFound"), notFound: true},
		{err: &NotFoundError{Kind: "instance", Name: "i-1"}, notFound: true},
		{err: apiError(400, "IncorrectState"), badState: true},
		{err: apiError(400, "VolumeInUse"), badState: true},
		{err: errors.New("plain")},
	} {
		got := [4]bool{IsCapacity(tc.err), IsThrottled(tc.err), IsNotFound(tc.err), IsIncorrectState(tc.err)}
		want := [4]bool{tc.capacity, tc.throttled, tc.notFound, tc.badState}
		if got != want {
			t.Errorf("%v: capacity/throttled/notFound/incorrectState = %v, want %v", tc.err, got, want)
		}
	}
}
