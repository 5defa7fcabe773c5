package sim

import (
	"regexp"
	"time"

	"github.com/spotmax/spotmax/pkg/sim/awsproto"
)

// The EC2, Auto Scaling and load-balancing services of this package speak through the protocol
// kernel (pkg/sim/awsproto) under the short names below, so that their handlers read as before the
// kernel moved out (and other work on those files merges); every name here is the kernel's, not a
// second implementation.

// APIError is an error as AWS returns it (awsproto.APIError).
type APIError = awsproto.APIError

// params gives structured access to query-protocol parameters (awsproto.Params).
type params = awsproto.Params

// Error codes that several services share (awsproto's).
const (
	CodeInsufficientCapacity = awsproto.CodeInsufficientCapacity
	CodeRequestLimitExceeded = awsproto.CodeRequestLimitExceeded
	CodeThrottling           = awsproto.CodeThrottling
	CodeInvalidParameter     = awsproto.CodeInvalidParameter
	CodeMissingParameter     = awsproto.CodeMissingParameter
	CodeValidationError      = awsproto.CodeValidationError
	CodeInvalidAction        = awsproto.CodeInvalidAction
)

const protoEC2 = awsproto.ProtoEC2

func errf(code, format string, args ...any) *APIError { return awsproto.Errorf(code, format, args...) }

func nullMember(code, field string) *APIError { return awsproto.NullMember(code, field) }

func isoTime(t time.Time) string { return awsproto.ISOTime(t) }

func page(n int, maxResults int64, token string, defaultMax, limit int64) (start, end int, next string, err *APIError) {
	return awsproto.Page(n, maxResults, token, defaultMax, limit)
}

func lazyRegexp(expr string) func() *regexp.Regexp { return awsproto.LazyRegexp(expr) }

func notServed(c *call) *APIError { return awsproto.NotServed(c.Call) }

// call is one API request to a service of this package: the kernel's Call under the method
// names its handlers use.
type call struct{ *awsproto.Call }

func (c *call) fail(err *APIError) { c.Fail(err) }
func (c *call) writeEC2(body any)  { c.WriteEC2(body) }
func (c *call) writeQuery(r any)   { c.WriteQuery(r) }
