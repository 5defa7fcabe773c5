package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// controlHandler serves the control API under /_sim/: listing state and injecting faults. It is
// for tests and demos, never for spotmax itself. Requests and responses are JSON; errors are
// {"error": "...", "code": "..."} with a 4xx status.
//
//	GET  /_sim/health                     {"status":"ok","region":...}
//	GET  /_sim/instances                  instances with their IMDS endpoints
//	GET  /_sim/volumes                    volumes with content markers and attachments
//	GET  /_sim/groups                     Auto Scaling groups with their members
//	GET  /_sim/events                     the latest EC2 events (EventBridge envelopes)
//	GET  /_sim/calls                      API call counts; POST /_sim/calls/reset zeroes them
//	POST /_sim/instances/{id}/interrupt   {"action":"terminate|stop|hibernate"} (optional)
//	POST /_sim/instances/{id}/rebalance
//	GET  /_sim/capacity, POST /_sim/capacity {"instanceType","az","market","count"} (-1 = unlimited)
//	POST /_sim/throttle                   {"scope","rate"} or {"scope","next"}
//	POST /_sim/latency                    {"scope","ms"}
//	POST /_sim/fail                       {"scope","code","message"}
//	POST /_sim/faults/clear
//	GET  /_sim/clock                      {"now","scale"}; POST /_sim/clock/advance {"seconds"}
//	GET  /_sim/behaviors                  the AWS behaviours switched on; PUT replaces them (JSON of Behaviors)
func (r *Region) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sim/health", func(w http.ResponseWriter, _ *http.Request) {
		writeControlJSON(w, map[string]any{"status": "ok", "region": r.Name(), "account": r.AccountID()})
	})
	mux.HandleFunc("GET /_sim/instances", func(w http.ResponseWriter, _ *http.Request) {
		writeControlJSON(w, r.controlInstances(""))
	})
	mux.HandleFunc("GET /_sim/instances/{id}", func(w http.ResponseWriter, req *http.Request) {
		r.writeControlInstance(w, req.PathValue("id"))
	})
	mux.HandleFunc("GET /_sim/volumes", func(w http.ResponseWriter, _ *http.Request) {
		writeControlJSON(w, r.controlVolumes())
	})
	mux.HandleFunc("GET /_sim/groups", func(w http.ResponseWriter, _ *http.Request) {
		writeControlJSON(w, r.controlGroups())
	})
	mux.HandleFunc("GET /_sim/events", func(w http.ResponseWriter, _ *http.Request) {
		evs := r.Events()
		out := make([]json.RawMessage, 0, len(evs))
		for _, e := range evs {
			out = append(out, e.JSON(r.AccountID(), r.Name()))
		}
		writeControlJSON(w, out)
	})
	mux.HandleFunc("GET /_sim/calls", func(w http.ResponseWriter, _ *http.Request) {
		writeControlJSON(w, r.Calls())
	})
	mux.HandleFunc("POST /_sim/calls/reset", func(w http.ResponseWriter, _ *http.Request) {
		r.ResetCalls()
		writeControlJSON(w, map[string]any{"reset": true})
	})
	mux.HandleFunc("POST /_sim/instances/{id}/interrupt", func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Action string `json:"action"`
		}
		if !readControlJSON(w, req, &body, true) {
			return
		}
		id := req.PathValue("id")
		if err := r.Interrupt(id, body.Action); err != nil {
			writeControlError(w, err)
			return
		}
		r.writeControlInstance(w, id)
	})
	mux.HandleFunc("POST /_sim/instances/{id}/rebalance", func(w http.ResponseWriter, req *http.Request) {
		id := req.PathValue("id")
		if err := r.Rebalance(id); err != nil {
			writeControlError(w, err)
			return
		}
		r.writeControlInstance(w, id)
	})
	mux.HandleFunc("GET /_sim/capacity", func(w http.ResponseWriter, _ *http.Request) {
		writeControlJSON(w, r.controlCapacity())
	})
	mux.HandleFunc("POST /_sim/capacity", func(w http.ResponseWriter, req *http.Request) {
		var body controlPool
		body.Count = -2 // absent
		if !readControlJSON(w, req, &body, false) {
			return
		}
		if body.Market == "" {
			body.Market = MarketSpot
		}
		switch {
		case body.InstanceType == "" || !validInstanceType(body.InstanceType):
			writeControlErrorf(w, http.StatusBadRequest, "instanceType %q is not an instance type such as m5.large", body.InstanceType)
			return
		case !r.knownAZ(body.AZ):
			writeControlErrorf(w, http.StatusBadRequest, "az %q is not an availability zone of %s", body.AZ, r.Name())
			return
		case body.Market != MarketSpot && body.Market != MarketOnDemand:
			writeControlErrorf(w, http.StatusBadRequest, "market %q must be spot or on-demand", body.Market)
			return
		case body.Count < -1:
			writeControlErrorf(w, http.StatusBadRequest, "count must be 0 or more, or -1 for unlimited")
			return
		}
		r.SetCapacity(PoolKey{InstanceType: body.InstanceType, AZ: body.AZ, Market: body.Market}, body.Count)
		writeControlJSON(w, r.controlCapacity())
	})
	mux.HandleFunc("POST /_sim/throttle", func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Scope string   `json:"scope"`
			Rate  *float64 `json:"rate"`
			Next  *int     `json:"next"`
		}
		if !readControlJSON(w, req, &body, false) || !checkScope(w, body.Scope) {
			return
		}
		switch {
		case (body.Rate == nil) == (body.Next == nil):
			writeControlErrorf(w, http.StatusBadRequest, "give exactly one of rate (0..1) and next (a number of calls)")
			return
		case body.Rate != nil && (*body.Rate < 0 || *body.Rate > 1):
			writeControlErrorf(w, http.StatusBadRequest, "rate %v must be between 0 and 1", *body.Rate)
			return
		case body.Next != nil && *body.Next < 0:
			writeControlErrorf(w, http.StatusBadRequest, "next %d must not be negative", *body.Next)
			return
		}
		if body.Rate != nil {
			r.SetThrottleRate(body.Scope, *body.Rate)
		} else {
			r.ThrottleNext(body.Scope, *body.Next)
		}
		writeControlJSON(w, map[string]any{"scope": body.Scope, "rate": body.Rate, "next": body.Next})
	})
	mux.HandleFunc("POST /_sim/latency", func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Scope string `json:"scope"`
			MS    *int   `json:"ms"`
		}
		if !readControlJSON(w, req, &body, false) || !checkScope(w, body.Scope) {
			return
		}
		if body.MS == nil || *body.MS < 0 {
			writeControlErrorf(w, http.StatusBadRequest, "ms must be given and not negative (0 removes the latency)")
			return
		}
		r.SetCallLatency(body.Scope, time.Duration(*body.MS)*time.Millisecond)
		writeControlJSON(w, map[string]any{"scope": body.Scope, "ms": *body.MS})
	})
	mux.HandleFunc("POST /_sim/fail", func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Scope   string `json:"scope"`
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		if !readControlJSON(w, req, &body, false) || !checkScope(w, body.Scope) {
			return
		}
		if body.Code == "" {
			writeControlErrorf(w, http.StatusBadRequest, "code is required, e.g. InsufficientInstanceCapacity")
			return
		}
		if body.Message == "" {
			body.Message = "injected failure"
		}
		r.FailNext(body.Scope, body.Code, body.Message)
		writeControlJSON(w, body)
	})
	mux.HandleFunc("POST /_sim/faults/clear", func(w http.ResponseWriter, _ *http.Request) {
		r.ClearFaults()
		writeControlJSON(w, map[string]any{"cleared": true})
	})
	mux.HandleFunc("GET /_sim/clock", func(w http.ResponseWriter, _ *http.Request) {
		writeControlJSON(w, r.controlClock())
	})
	mux.HandleFunc("POST /_sim/clock/advance", func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Seconds *float64 `json:"seconds"`
		}
		if !readControlJSON(w, req, &body, false) {
			return
		}
		if body.Seconds == nil || *body.Seconds < 0 {
			writeControlErrorf(w, http.StatusBadRequest, "seconds must be given and not negative")
			return
		}
		r.Advance(time.Duration(*body.Seconds * float64(time.Second)))
		writeControlJSON(w, r.controlClock())
	})
	mux.HandleFunc("GET /_sim/behaviors", func(w http.ResponseWriter, _ *http.Request) {
		writeControlJSON(w, r.Behaviors())
	})
	mux.HandleFunc("PUT /_sim/behaviors", func(w http.ResponseWriter, req *http.Request) {
		var body Behaviors
		if !readControlJSON(w, req, &body, false) {
			return
		}
		r.SetBehaviors(body)
		writeControlJSON(w, r.Behaviors())
	})
	mux.HandleFunc("/_sim/", func(w http.ResponseWriter, req *http.Request) {
		writeControlErrorf(w, http.StatusNotFound, "no control endpoint %s %s", req.Method, req.URL.Path)
	})
	return mux
}

// controlInstance is an instance as the control API lists it.
type controlInstance struct {
	ID                   string               `json:"id"`
	Type                 string               `json:"instanceType"`
	Market               string               `json:"market"`
	AZ                   string               `json:"az"`
	SubnetID             string               `json:"subnetId"`
	State                string               `json:"state"`
	StateReason          string               `json:"stateReason,omitempty"`
	PrivateIP            string               `json:"privateIp"`
	IMDS                 string               `json:"imds,omitempty"`
	Group                string               `json:"group,omitempty"`
	TargetLifecycleState string               `json:"targetLifecycleState,omitempty"`
	LaunchTime           time.Time            `json:"launchTime"`
	LaunchTemplate       string               `json:"launchTemplate,omitempty"`
	Interruption         *controlInterruption `json:"interruption,omitempty"`
	Rebalance            *time.Time           `json:"rebalance,omitempty"`
	Volumes              []controlInstanceVol `json:"volumes"`
	Tags                 Tags                 `json:"tags"`
}

type controlInterruption struct {
	Action string    `json:"action"`
	Notice time.Time `json:"notice"`
	Time   time.Time `json:"time"`
}

type controlInstanceVol struct {
	Device              string `json:"device"`
	VolumeID            string `json:"volumeId"`
	DeleteOnTermination bool   `json:"deleteOnTermination"`
	Marker              string `json:"marker,omitempty"`
}

func (r *Region) controlInstances(only string) []controlInstance {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sched.runDue(r.clock.Now())
	x := r.ext()
	out := []controlInstance{}
	for _, in := range r.instances {
		if only != "" && in.ID != only {
			continue
		}
		ci := controlInstance{
			ID: in.ID, Type: in.Type, Market: in.Market, AZ: in.AZ, SubnetID: in.SubnetID, State: in.State,
			StateReason: in.StateReason, PrivateIP: in.PrivateIP, Group: r.ctlGroupOf(in),
			TargetLifecycleState: r.imdsTargetLifecycleState(in), LaunchTime: in.LaunchTime, Rebalance: in.Rebalance,
			Volumes: []controlInstanceVol{}, Tags: in.Tags.Clone(),
		}
		if _, open := x.imds[in.ID]; open && in.IMDSAddr != "" {
			ci.IMDS = "http://" + in.IMDSAddr
		}
		if lt := in.LaunchTemplate; lt != nil {
			ci.LaunchTemplate = lt.Name + ":" + lt.Version
		}
		if it := in.Interruption; it != nil {
			ci.Interruption = &controlInterruption{Action: it.Action, Notice: it.Notice, Time: it.Time}
		}
		for _, bd := range in.BlockDevices {
			cv := controlInstanceVol{Device: bd.DeviceName, VolumeID: bd.VolumeID, DeleteOnTermination: bd.DeleteOnTermination}
			if v := r.volumes[bd.VolumeID]; v != nil {
				cv.Marker = v.Marker
			}
			ci.Volumes = append(ci.Volumes, cv)
		}
		out = append(out, ci)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LaunchTime.Equal(out[j].LaunchTime) {
			return out[i].LaunchTime.Before(out[j].LaunchTime)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (r *Region) writeControlInstance(w http.ResponseWriter, id string) {
	list := r.controlInstances(id)
	if len(list) == 0 {
		writeControlError(w, ctlInstanceNotFound(id))
		return
	}
	writeControlJSON(w, list[0])
}

// controlVolume is a volume as the control API lists it.
type controlVolume struct {
	ID         string             `json:"id"`
	AZ         string             `json:"az"`
	Size       int32              `json:"size"`
	Type       string             `json:"volumeType"`
	State      string             `json:"state"`
	Marker     string             `json:"marker"`
	Created    time.Time          `json:"created"`
	Attachment *controlAttachment `json:"attachment,omitempty"`
	Tags       Tags               `json:"tags"`
}

type controlAttachment struct {
	InstanceID          string    `json:"instanceId"`
	Device              string    `json:"device"`
	State               string    `json:"state"`
	AttachTime          time.Time `json:"attachTime"`
	DeleteOnTermination bool      `json:"deleteOnTermination"`
}

func (r *Region) controlVolumes() []controlVolume {
	vols := func() []Volume {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.sched.runDue(r.clock.Now())
		out := make([]Volume, 0, len(r.volumes))
		for _, v := range r.volumes {
			out = append(out, cloneVolume(v))
		}
		return out
	}()
	sort.Slice(vols, func(i, j int) bool { return vols[i].ID < vols[j].ID })
	out := make([]controlVolume, 0, len(vols))
	for _, v := range vols {
		cv := controlVolume{ID: v.ID, AZ: v.AZ, Size: v.Size, Type: v.Type, State: v.State, Marker: v.Marker,
			Created: v.Created, Tags: v.Tags}
		if a := v.Attachment; a != nil {
			cv.Attachment = &controlAttachment{InstanceID: a.InstanceID, Device: a.Device, State: a.State,
				AttachTime: a.AttachTime, DeleteOnTermination: a.DeleteOnTermination}
		}
		out = append(out, cv)
	}
	return out
}

// controlGroup is an Auto Scaling group as the control API lists it.
type controlGroup struct {
	Name              string          `json:"name"`
	LaunchTemplate    string          `json:"launchTemplate,omitempty"`
	Min               int32           `json:"min"`
	Max               int32           `json:"max"`
	Desired           int32           `json:"desired"`
	Subnets           []string        `json:"subnets"`
	CapacityRebalance bool            `json:"capacityRebalance"`
	Status            string          `json:"status,omitempty"`
	Tags              []controlTag    `json:"tags"`
	Members           []controlMember `json:"members"`
}

type controlTag struct {
	Key               string `json:"key"`
	Value             string `json:"value"`
	PropagateAtLaunch bool   `json:"propagateAtLaunch"`
}

type controlMember struct {
	InstanceID     string `json:"instanceId"`
	LifecycleState string `json:"lifecycleState"`
	HealthStatus   string `json:"healthStatus"`
	InstanceType   string `json:"instanceType,omitempty"`
	AZ             string `json:"az,omitempty"`
	Market         string `json:"market,omitempty"`
}

func (r *Region) controlGroups() []controlGroup {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sched.runDue(r.clock.Now())
	out := []controlGroup{}
	for _, g := range r.asgs {
		cg := controlGroup{Name: g.Name, Min: g.Min, Max: g.Max, Desired: g.Desired,
			Subnets: append([]string{}, g.Subnets...), CapacityRebalance: g.CapacityRebalance, Status: g.Status,
			Tags: []controlTag{}, Members: []controlMember{}}
		if lt := g.LaunchTemplate; lt != nil {
			cg.LaunchTemplate = lt.Name + ":" + lt.Version
		}
		for _, t := range g.Tags {
			cg.Tags = append(cg.Tags, controlTag{Key: t.Key, Value: t.Value, PropagateAtLaunch: t.PropagateAtLaunch})
		}
		for _, m := range g.Members {
			cm := controlMember{InstanceID: m.InstanceID, LifecycleState: m.LifecycleState, HealthStatus: m.HealthStatus}
			if in := r.instances[m.InstanceID]; in != nil {
				cm.InstanceType, cm.AZ, cm.Market = in.Type, in.AZ, in.Market
			}
			cg.Members = append(cg.Members, cm)
		}
		out = append(out, cg)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// controlPool is one capacity limit.
type controlPool struct {
	InstanceType string `json:"instanceType"`
	AZ           string `json:"az"`
	Market       string `json:"market"`
	Count        int    `json:"count"`
}

func (r *Region) controlCapacity() []controlPool {
	out := []controlPool{}
	for k, n := range r.Capacity() {
		out = append(out, controlPool{InstanceType: k.InstanceType, AZ: k.AZ, Market: k.Market, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.InstanceType != b.InstanceType {
			return a.InstanceType < b.InstanceType
		}
		if a.AZ != b.AZ {
			return a.AZ < b.AZ
		}
		return a.Market < b.Market
	})
	return out
}

func (r *Region) controlClock() map[string]any {
	return map[string]any{"now": r.clock.Now().UTC().Format(time.RFC3339Nano), "scale": r.clock.Scale()}
}

func (r *Region) knownAZ(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hasAZ(name)
}

func checkScope(w http.ResponseWriter, scope string) bool {
	svc, action, _ := strings.Cut(scope, ":")
	if svc == "" || strings.Contains(action, ":") || strings.ContainsAny(scope, " /") {
		writeControlErrorf(w, http.StatusBadRequest, "scope %q must be a service (ec2) or service:Action (ec2:AttachVolume)", scope)
		return false
	}
	return true
}

// readControlJSON decodes a request body into v, refusing unknown fields; an empty body is
// accepted when optional.
func readControlJSON(w http.ResponseWriter, req *http.Request, v any, optional bool) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err != nil {
		writeControlErrorf(w, http.StatusBadRequest, "reading request body: %v", err)
		return false
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		if optional {
			return true
		}
		writeControlErrorf(w, http.StatusBadRequest, "a JSON request body is required")
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeControlErrorf(w, http.StatusBadRequest, "decoding request body: %v", err)
		return false
	}
	return true
}

func writeControlJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeControlErrorf(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf(format, args...)})
}

func writeControlError(w http.ResponseWriter, err error) {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		writeControlErrorf(w, http.StatusBadRequest, "%v", err)
		return
	}
	status := apiErr.Status
	if strings.HasSuffix(apiErr.Code, ".NotFound") {
		status = http.StatusNotFound
	}
	if status >= 500 {
		status = http.StatusConflict
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": apiErr.Message, "code": apiErr.Code})
}
