package sim

import (
	"regexp"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"

	"github.com/spotmax/spotmax/pkg/sim/awsproto"
)

// The EC2, Auto Scaling and load-balancing services of this package speak through the protocol
// kernel (pkg/sim/awsproto) under the short names below, so that their handlers read as before the
// kernel moved out; every name here is the kernel's, not a second implementation.

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

const (
	protoEC2   = awsproto.ProtoEC2
	protoQuery = awsproto.ProtoQuery
	protoJSON  = awsproto.ProtoJSON
	protoCBOR  = awsproto.ProtoCBOR
)

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

func (c *call) fail(err *APIError)     { c.Fail(err) }
func (c *call) writeEC2(body any)      { c.WriteEC2(body) }
func (c *call) writeQuery(r any)       { c.WriteQuery(r) }
func (c *call) writeJSON(v any)        { c.WriteJSON(v) }
func (c *call) writeCBOR(v cbor.Value) { c.WriteCBOR(v) }

// jsonActions, serveJSON and decodeJSON serve the AWS JSON services still in this package.
type jsonActions map[string]func(r *Region, c *call) (any, *APIError)

func serveJSON(r *Region, c *call, service, target string, actions jsonActions) {
	if err := awsproto.RequireJSON(c.Call, service, target); err != nil {
		c.Fail(err)
		return
	}
	out, err := runJSON(r, c, actions)
	if err != nil {
		c.Fail(err)
		return
	}
	c.WriteJSON(out)
}

func runJSON(r *Region, c *call, actions jsonActions) (any, *APIError) {
	h, ok := actions[c.Action]
	if !ok {
		return nil, notServed(c)
	}
	var out any
	var err *APIError
	r.Do(func() { out, err = h(r, c) })
	return out, err
}

func (c *call) decodeJSON(v any, code string) *APIError { return c.DecodeJSON(v, code) }
