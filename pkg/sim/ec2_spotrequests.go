package sim

import (
	"encoding/xml"
	"sort"
)

// DescribeSpotInstanceRequests: every spot instance has a one-time request whose status tells
// what AWS is doing with it. A consumer of EventBridge interruption warnings can confirm one
// there (status marked-for-termination / marked-for-stop / marked-for-hibernation) before it
// acts on a stale, duplicated or mistaken event. Status codes and states follow AWS's "Spot
// request status" lifecycle.

type xmlSpotRequestStatus struct {
	Code       string `xml:"code"`
	UpdateTime string `xml:"updateTime"`
	Message    string `xml:"message"`
}

type xmlSpotRequest struct {
	ID                       string               `xml:"spotInstanceRequestId"`
	State                    string               `xml:"state"`
	Type                     string               `xml:"type"`
	Status                   xmlSpotRequestStatus `xml:"status"`
	InstanceID               string               `xml:"instanceId"`
	LaunchedAvailabilityZone string               `xml:"launchedAvailabilityZone"`
	InstanceType             string               `xml:"launchSpecification>instanceType"`
	CreateTime               string               `xml:"createTime"`
	InterruptionBehavior     string               `xml:"instanceInterruptionBehavior"`
	ProductDescription       string               `xml:"productDescription"`
}

// spotRequest renders the request behind a spot instance as AWS would describe it now.
func (r *Region) spotRequest(in *Instance) xmlSpotRequest {
	behavior := in.InterruptBehavior
	if behavior == "" {
		behavior = "terminate"
	}
	x := xmlSpotRequest{ID: in.SpotRequestID, State: "active", Type: "one-time", InstanceID: in.ID,
		LaunchedAvailabilityZone: in.AZ, InstanceType: in.Type, CreateTime: isoTime(in.LaunchTime),
		InterruptionBehavior: behavior, ProductDescription: "Linux/UNIX",
		Status: xmlSpotRequestStatus{Code: "fulfilled", UpdateTime: isoTime(in.LaunchTime), Message: "Your spot request is fulfilled."}}
	switch {
	case in.State == StateTerminated || in.State == StateShuttingDown:
		x.State = "closed"
		code, msg := "instance-terminated-by-user", "Spot Instance terminated due to user-initiated termination."
		if in.StateReason == "Server.SpotInstanceTermination" {
			code, msg = "instance-terminated-no-capacity", "Spot Instance terminated due to no available capacity."
		}
		x.Status = xmlSpotRequestStatus{Code: code, UpdateTime: isoTime(r.now()), Message: msg}
	case in.Interruption != nil && in.State != StateStopped:
		code := map[string]string{"stop": "marked-for-stop", "hibernate": "marked-for-hibernation"}[in.Interruption.Action]
		if code == "" {
			code = "marked-for-termination"
		}
		x.Status = xmlSpotRequestStatus{Code: code, UpdateTime: isoTime(in.Interruption.Notice),
			Message: "Spot Instance is marked for interruption."}
	case in.State == StateStopped && in.StateReason == "Server.SpotInstanceTermination":
		x.State = "disabled"
		x.Status = xmlSpotRequestStatus{Code: "instance-stopped-no-capacity", UpdateTime: isoTime(r.now()),
			Message: "Spot Instance stopped due to no available capacity."}
	}
	return x
}

func (r *Region) ec2DescribeSpotInstanceRequests(c *call) *APIError {
	p := c.Form
	ids := p.List("SpotInstanceRequestId")
	var out []xmlSpotRequest
	for _, in := range r.instances {
		if in.SpotRequestID == "" {
			continue
		}
		out = append(out, r.spotRequest(in))
	}
	if len(ids) > 0 {
		byID := map[string]xmlSpotRequest{}
		for _, x := range out {
			byID[x.ID] = x
		}
		out = nil
		for _, id := range ids {
			x, ok := byID[id]
			if !ok {
				return errf("InvalidSpotInstanceRequestID.NotFound", "The spot instance request ID '%s' does not exist", id)
			}
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	out, err := applyFilters(out, parseFilters(p), filterFields[xmlSpotRequest]{
		"instance-id":                func(x xmlSpotRequest) []string { return []string{x.InstanceID} },
		"spot-instance-request-id":   func(x xmlSpotRequest) []string { return []string{x.ID} },
		"state":                      func(x xmlSpotRequest) []string { return []string{x.State} },
		"status-code":                func(x xmlSpotRequest) []string { return []string{x.Status.Code} },
		"type":                       func(x xmlSpotRequest) []string { return []string{x.Type} },
		"launched-availability-zone": func(x xmlSpotRequest) []string { return []string{x.LaunchedAvailabilityZone} },
	}, nil)
	if err != nil {
		return err
	}
	c.writeEC2(struct {
		XMLName  xml.Name         `xml:"x"`
		Requests []xmlSpotRequest `xml:"spotInstanceRequestSet>item"`
	}{Requests: out})
	return nil
}
