package sim

import (
	"net/http"
	"sort"
	"time"
)

// faults holds injected faults. Scopes are a service ("ec2"), or a service and action
// ("ec2:AttachVolume"); the more specific scope wins.
type faults struct {
	throttleRate map[string]float64
	throttleNext map[string]int
	latency      map[string]time.Duration
	failNext     map[string][]*APIError
}

func (f *faults) lookupRate(svc, action string) float64 {
	if v, ok := f.throttleRate[svc+":"+action]; ok {
		return v
	}
	return f.throttleRate[svc]
}

// SetThrottleRate makes a fraction (0..1) of the calls in scope fail with the service's
// throttling error. A rate of 0 removes the fault.
func (r *Region) SetThrottleRate(scope string, rate float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.faults.throttleRate == nil {
		r.faults.throttleRate = map[string]float64{}
	}
	if rate <= 0 {
		delete(r.faults.throttleRate, scope)
		return
	}
	r.faults.throttleRate[scope] = rate
}

// ThrottleNext makes the next n calls in scope fail with the service's throttling error.
func (r *Region) ThrottleNext(scope string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.faults.throttleNext == nil {
		r.faults.throttleNext = map[string]int{}
	}
	r.faults.throttleNext[scope] = n
}

// SetCallLatency delays every call in scope by d of real time before it is served; 0 removes it.
func (r *Region) SetCallLatency(scope string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.faults.latency == nil {
		r.faults.latency = map[string]time.Duration{}
	}
	if d <= 0 {
		delete(r.faults.latency, scope)
		return
	}
	r.faults.latency[scope] = d
}

// FailNext makes the next call in scope fail with the given error code and message; calling it
// again queues further failures.
func (r *Region) FailNext(scope, code, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.faults.failNext == nil {
		r.faults.failNext = map[string][]*APIError{}
	}
	status := http.StatusBadRequest
	if code == "InternalError" || code == "ServiceUnavailable" || code == "Unavailable" {
		status = http.StatusServiceUnavailable
	}
	if r.beh.EC2.CapacityServerErrors && ec2CapacityCodes[code] {
		status = http.StatusInternalServerError
	}
	r.faults.failNext[scope] = append(r.faults.failNext[scope], &APIError{Status: status, Code: code, Message: message})
}

// ClearFaults removes every injected fault.
func (r *Region) ClearFaults() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = faults{}
}

// injected returns the fault for one call, if any, and the real delay to apply before serving it.
// It is called with the lock held.
func (r *Region) injected(svc, action string) (*APIError, time.Duration) {
	f := &r.faults
	delay := f.latency[svc]
	if d, ok := f.latency[svc+":"+action]; ok {
		delay = d
	}
	for _, scope := range []string{svc + ":" + action, svc} {
		if q := f.failNext[scope]; len(q) > 0 {
			f.failNext[scope] = q[1:]
			return q[0], delay
		}
	}
	for _, scope := range []string{svc + ":" + action, svc} {
		if n := f.throttleNext[scope]; n > 0 {
			f.throttleNext[scope] = n - 1
			return throttleError(svc), delay
		}
	}
	if rate := f.lookupRate(svc, action); rate > 0 && r.rng.Float64() < rate {
		return throttleError(svc), delay
	}
	return nil, delay
}

func throttleError(svc string) *APIError {
	switch svc {
	case "ec2":
		return &APIError{Status: http.StatusServiceUnavailable, Code: CodeRequestLimitExceeded, Message: "Request limit exceeded."}
	case "sqs":
		return &APIError{Status: http.StatusBadRequest, Code: "RequestThrottled", Message: "Request is throttled."}
	default:
		return &APIError{Status: http.StatusBadRequest, Code: CodeThrottling, Message: "Rate exceeded"}
	}
}

// CallCount is how often one action was called.
type CallCount struct {
	Action string // service:Action
	Count  int
}

// Calls returns how often each action was called since the start or the last ResetCalls,
// including calls that failed, ordered by action.
func (r *Region) Calls() []CallCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]CallCount, 0, len(r.calls))
	for k, v := range r.calls {
		out = append(out, CallCount{Action: k, Count: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Action < out[j].Action })
	return out
}

// CallsTotal returns the number of calls since the start or the last ResetCalls.
func (r *Region) CallsTotal() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.calls {
		n += v
	}
	return n
}

// CallsBy returns the actions (service:Action) each access key id called.
func (r *Region) CallsBy() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for key, set := range r.callsBy {
		for a := range set {
			out[key] = append(out[key], a)
		}
		sort.Strings(out[key])
	}
	return out
}

// ResetCalls zeroes the call counters.
func (r *Region) ResetCalls() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = map[string]int{}
	r.callsBy = map[string]map[string]bool{}
}
