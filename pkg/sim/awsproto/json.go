package awsproto

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// JSONActions is the action table of a service spoken over AWS JSON (1.0 or 1.1): each handler
// returns the response body or an error. S is the service's own state type.
type JSONActions[S any] map[string]func(s S, c *Call) (any, *APIError)

// RequireJSON refuses a call that is not AWS JSON, naming the service and its X-Amz-Target
// prefix, for services spoken over AWS JSON only.
func RequireJSON(c *Call, service, target string) *APIError {
	if c.Protocol == ProtoJSON {
		return nil
	}
	return &APIError{Status: http.StatusBadRequest, Code: CodeInvalidAction,
		Message: "The simulated region serves " + service + " over the AWS JSON 1.1 protocol only (X-Amz-Target: " + target + ".*)."}
}

// Run runs c's action from actions through do, which holds whatever lock the service's state
// needs; an unknown action is "not served".
func (a JSONActions[S]) Run(s S, c *Call, do func(func())) (any, *APIError) {
	h, ok := a[c.Action]
	if !ok {
		return nil, NotServed(c)
	}
	var out any
	var err *APIError
	do(func() { out, err = h(s, c) })
	return out, err
}

// Serve answers a call of a service spoken over AWS JSON only: refused unless it is AWS JSON
// (RequireJSON), its action run through do (Run), the result or the error written.
func (a JSONActions[S]) Serve(s S, c *Call, service, target string, do func(func())) {
	if err := RequireJSON(c, service, target); err != nil {
		c.Fail(err)
		return
	}
	out, err := a.Run(s, c, do)
	if err != nil {
		c.Fail(err)
		return
	}
	c.WriteJSON(out)
}

// DecodeJSON decodes the call's JSON body into v; an empty body is an empty request, as AWS
// takes it. A malformed body is the service's error code (SerializationException for most;
// EventBridge answers ValidationException).
func (c *Call) DecodeJSON(v any, code string) *APIError {
	if len(bytes.TrimSpace(c.Body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.Body, v); err != nil {
		return Errorf(code, "decoding the request: %v", err)
	}
	return nil
}
