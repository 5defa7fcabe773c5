package awsapi

import (
	"errors"
	"net"
	"strings"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
)

// Code returns the AWS error code of err ("" when err carries none).
func Code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// capacityCodes are errors that mean "this pool (type, AZ, market) cannot give an instance now";
// a launch moves on to its next option.
var capacityCodes = map[string]bool{
	"InsufficientInstanceCapacity":         true,
	"InsufficientCapacity":                 true,
	"InsufficientHostCapacity":             true,
	"InsufficientReservedInstanceCapacity": true,
	"MaxSpotInstanceCountExceeded":         true,
	"SpotMaxPriceTooLow":                   true,
	"Unsupported":                          true,
	"UnfulfillableCapacity":                true,
	"InstanceLimitExceeded":                true,
	"VcpuLimitExceeded":                    true,
	"InsufficientFreeAddressesInSubnet":    true,
}

// IsCapacity reports whether err means the requested capacity cannot be had right now.
func IsCapacity(err error) bool { return capacityCodes[Code(err)] }

// IsThrottled reports whether err is a rate-limit error.
func IsThrottled(err error) bool {
	switch Code(err) {
	case "RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled",
		"TooManyRequestsException", "RequestThrottledException", "SlowDown":
		return true
	}
	return false
}

// IsNotFound reports whether err says that a resource does not exist.
func IsNotFound(err error) bool {
	code := Code(err)
	if strings.HasSuffix(code, ".NotFound") || strings.HasSuffix(code, "NotFoundException") ||
		code == "QueueDoesNotExist" || code == "AWS.SimpleQueueService.NonExistentQueue" {
		return true
	}
	var nf *NotFoundError
	return errors.As(err, &nf)
}

// IsIncorrectState reports whether err says a resource is in the wrong state for the request
// (a volume still in use, an instance not yet running).
func IsIncorrectState(err error) bool {
	switch Code(err) {
	case "IncorrectState", "IncorrectInstanceState", "VolumeInUse", "ScalingActivityInProgress", "ResourceInUse":
		return true
	}
	return false
}

// IsNoCredentials reports whether err comes from a request that could not be signed because no
// credentials were found.
func IsNoCredentials(err error) bool {
	var se *v4.SigningError
	return errors.As(err, &se)
}

// IsUnreachable reports whether err means the endpoint could not be reached at all.
func IsUnreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &op) || errors.As(err, &dns)
}

// NotFoundError is spotmax's own "does not exist" for resources that AWS reports by omission
// (DescribeAutoScalingGroups answers an unknown name with an empty list).
type NotFoundError struct {
	Kind string // "Auto Scaling group", "instance", "volume"
	Name string
}

// Error implements error.
func (e *NotFoundError) Error() string { return e.Kind + " " + e.Name + " not found" }
