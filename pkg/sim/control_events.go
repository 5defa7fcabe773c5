package sim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
)

// EventBridge detail types of the EC2 events the region emits.
const (
	DetailSpotInterruption = "EC2 Spot Instance Interruption Warning"
	DetailRebalance        = "EC2 Instance Rebalance Recommendation"
	DetailStateChange      = "EC2 Instance State-change Notification"
)

// eventsKept is how many events the region keeps for the control API.
const eventsKept = 1000

// Event is an EC2 event as EventBridge delivers it. Detail holds the event's detail with AWS's
// field names: {"instance-id", "instance-action"} for a spot interruption warning,
// {"instance-id"} for a rebalance recommendation and {"instance-id", "state"} for a state
// change. Resources are ARNs.
type Event struct {
	ID         string
	Source     string
	DetailType string
	Time       time.Time
	Resources  []string
	Detail     map[string]any
}

// JSON renders the event in EventBridge's envelope, as a rule target (an SQS queue) receives it.
func (e Event) JSON(account, region string) []byte {
	id := e.ID
	if id == "" {
		h := fnv.New128a()
		fmt.Fprint(h, e.DetailType, e.Time.UnixNano(), e.Resources, e.Detail)
		b := h.Sum(nil)
		id = fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	}
	src := e.Source
	if src == "" {
		src = "aws.ec2"
	}
	resources := make([]string, 0, len(e.Resources))
	for _, res := range e.Resources {
		if !strings.HasPrefix(res, "arn:") && strings.HasPrefix(res, "i-") {
			res = eventInstanceARN(region, account, res)
		}
		resources = append(resources, res)
	}
	detail := e.Detail
	if detail == nil {
		detail = map[string]any{}
	}
	b, _ := json.Marshal(struct {
		Version    string         `json:"version"`
		ID         string         `json:"id"`
		DetailType string         `json:"detail-type"`
		Source     string         `json:"source"`
		Account    string         `json:"account"`
		Time       string         `json:"time"`
		Region     string         `json:"region"`
		Resources  []string       `json:"resources"`
		Detail     map[string]any `json:"detail"`
	}{"0", id, e.DetailType, src, account, e.Time.UTC().Format(imdsTimeFormat), region, resources, detail})
	return b
}

func eventInstanceARN(region, account, id string) string {
	return fmt.Sprintf("arn:aws:ec2:%s:%s:instance/%s", region, account, id)
}

// Subscribe registers fn to receive every EC2 event the region emits from now on. fn runs with
// the region locked, in event order: it must not call Region methods (they lock); an
// in-package service may change region state directly, anything else should copy the event to
// its own queue.
func (r *Region) Subscribe(fn func(Event)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	x := r.ext()
	x.subs = append(x.subs, fn)
}

// Events returns the most recent events the region emitted (up to 1000), oldest first.
func (r *Region) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.ext().recent...)
}

// notifyState is what was already announced about an instance.
type notifyState struct {
	state       string
	interrupted bool
	rebalanced  bool
}

// notify emits the events that an instance's change calls for, with the lock held. It runs from
// the state hooks, so interruptions and rebalance recommendations raised anywhere are announced.
func (r *Region) notify(x *extras, in *Instance) {
	st := x.notified[in.ID]
	if st == nil {
		st = &notifyState{}
		x.notified[in.ID] = st
	}
	if in.Rebalance != nil && !st.rebalanced {
		st.rebalanced = true
		r.emit(x, DetailRebalance, *in.Rebalance, in.ID, map[string]any{"instance-id": in.ID})
	}
	if in.Interruption != nil && !st.interrupted {
		st.interrupted = true
		r.emit(x, DetailSpotInterruption, in.Interruption.Notice, in.ID,
			map[string]any{"instance-id": in.ID, "instance-action": in.Interruption.Action})
	}
	if in.State != st.state {
		st.state = in.State
		r.emit(x, DetailStateChange, r.now(), in.ID, map[string]any{"instance-id": in.ID, "state": in.State})
	}
}

func (r *Region) emit(x *extras, detailType string, t time.Time, instanceID string, detail map[string]any) {
	r.publish(x, Event{Source: "aws.ec2", DetailType: detailType, Time: t,
		Resources: []string{eventInstanceARN(r.opts.Region, r.opts.AccountID, instanceID)}, Detail: detail})
}

// publish gives e an ID and records it with the region's recent events, then hands it to the
// subscribers; e.Time is kept to the second, as EventBridge's events are. It runs with the lock
// held.
func (r *Region) publish(x *extras, e Event) {
	b := make([]byte, 16)
	r.rng.Read(b)
	e.ID = fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	e.Time = e.Time.UTC().Truncate(time.Second)
	x.recent = append(x.recent, e)
	if len(x.recent) > eventsKept {
		x.recent = append([]Event(nil), x.recent[len(x.recent)-eventsKept:]...)
	}
	for _, fn := range x.subs {
		fn(e)
	}
}
