package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// jsonActions is the action table of a service spoken over AWS JSON (1.0 or 1.1): each handler runs
// with the region's lock held and returns the response body or an error.
type jsonActions map[string]func(r *Region, c *call) (any, *APIError)

// serveJSON serves one call of a service spoken over AWS JSON only: another protocol is refused
// naming the service and its X-Amz-Target prefix, an unknown action is "not served", and the
// action's result is written in the request's JSON version.
func serveJSON(r *Region, c *call, service, target string, actions jsonActions) {
	if c.Protocol != protoJSON {
		c.fail(&APIError{Status: http.StatusBadRequest, Code: CodeInvalidAction,
			Message: "The simulated region serves " + service + " over the AWS JSON 1.1 protocol only (X-Amz-Target: " + target + ".*)."})
		return
	}
	out, err := runJSON(r, c, actions)
	if err != nil {
		c.fail(err)
		return
	}
	c.writeJSON(out)
}

// runJSON runs c's action from actions with the region's lock held.
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

// decodeJSON decodes the call's JSON body into v; an empty body is an empty request, as AWS
// takes it. A malformed body is the service's error code (SerializationException for most;
// EventBridge answers ValidationException).
func (c *call) decodeJSON(v any, code string) *APIError {
	if len(bytes.TrimSpace(c.Body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.Body, v); err != nil {
		return errf(code, "decoding the request: %v", err)
	}
	return nil
}
