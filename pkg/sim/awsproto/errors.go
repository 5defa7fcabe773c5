package awsproto

import (
	"fmt"
	"net/http"
)

// APIError is an error as AWS returns it: an HTTP status, an error code and a message. Every
// protocol renders it in its own error format (Call.Fail).
type APIError struct {
	Status  int
	Code    string
	Message string
}

// Error implements error.
func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// Sender reports whether the client is at fault (HTTP 4xx), for the query protocol's Type field.
func (e *APIError) Sender() bool { return e.Status < 500 }

// Errorf returns a client error (HTTP 400) with an AWS error code.
func Errorf(code, format string, args ...any) *APIError {
	return &APIError{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error codes that several services share.
const (
	CodeInsufficientCapacity = "InsufficientInstanceCapacity"
	CodeRequestLimitExceeded = "RequestLimitExceeded" // EC2's throttling code
	CodeThrottling           = "Throttling"           // Auto Scaling and CloudWatch query
	CodeInvalidParameter     = "InvalidParameterValue"
	CodeMissingParameter     = "MissingParameter"
	CodeValidationError      = "ValidationError"
	CodeInvalidAction        = "InvalidAction"
)

// NullMember is AWS's validation error for a required parameter that is missing, in the shape
// the query services and EventBridge use.
func NullMember(code, field string) *APIError {
	return Errorf(code, "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", field)
}
