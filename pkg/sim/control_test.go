package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// control calls the control API and decodes the JSON answer into out (when not nil).
func control(t *testing.T, srv *Server, method, path, body string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

func startControl(t *testing.T, opts Options) *Server {
	t.Helper()
	srv, err := Start(context.Background(), "127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func TestControlHealthAndClock(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	srv := startControl(t, Options{Start: start, TimeScale: 1})
	var health map[string]string
	if code := control(t, srv, "GET", "/_sim/health", "", &health); code != 200 || health["status"] != "ok" || health["region"] != "us-east-1" {
		t.Errorf("health: %d %v", code, health)
	}
	var clock struct {
		Now   time.Time `json:"now"`
		Scale float64   `json:"scale"`
	}
	if code := control(t, srv, "POST", "/_sim/clock/advance", `{"seconds": 3600}`, &clock); code != 200 {
		t.Fatalf("advance: %d", code)
	}
	if d := clock.Now.Sub(start); d < time.Hour || d > time.Hour+time.Minute || clock.Scale != 1 {
		t.Errorf("clock after advancing an hour = %v (scale %v)", clock.Now, clock.Scale)
	}
	control(t, srv, "GET", "/_sim/clock", "", &clock)
	if clock.Now.Sub(start) < time.Hour {
		t.Errorf("GET clock = %v", clock.Now)
	}
	var e map[string]string
	for _, body := range []string{"", `{"seconds": -1}`, `{"secs": 1}`, `not json`} {
		if code := control(t, srv, "POST", "/_sim/clock/advance", body, &e); code != 400 || e["error"] == "" {
			t.Errorf("advance %q: %d %v, want 400 with an error", body, code, e)
		}
	}
	if code := control(t, srv, "GET", "/_sim/nothing", "", &e); code != 404 || e["error"] == "" {
		t.Errorf("unknown endpoint: %d %v", code, e)
	}
}

func TestControlInstancesAndVolumes(t *testing.T) {
	srv := startControl(t, Options{IMDS: true})
	r := srv.Region()
	in := launchForTest(t, r, LaunchSpec{InstanceType: "m5.large", Spot: true,
		BlockDevices: []BlockDevice{{DeviceName: "/dev/sdf", VolumeSize: 20, DeleteOnTermination: true}},
		Tags:         map[string]Tags{"instance": {"Name": "web-1"}}})
	var list []controlInstance
	if code := control(t, srv, "GET", "/_sim/instances", "", &list); code != 200 || len(list) != 1 {
		t.Fatalf("instances: %d %+v", code, list)
	}
	got := list[0]
	if got.ID != in.ID || got.Type != "m5.large" || got.Market != "spot" || got.AZ != "us-east-1a" || got.State != "pending" ||
		got.PrivateIP != in.PrivateIP || got.IMDS != r.IMDSURL(in.ID) || !strings.HasPrefix(got.IMDS, "http://127.0.0.1:") ||
		len(got.Volumes) != 2 || got.Volumes[1].Device != "/dev/sdf" || got.Volumes[1].Marker == "" || got.Tags["Name"] != "web-1" {
		t.Errorf("instance = %+v", got)
	}

	var vols []controlVolume
	if code := control(t, srv, "GET", "/_sim/volumes", "", &vols); code != 200 || len(vols) != 2 {
		t.Fatalf("volumes: %d %+v", code, vols)
	}
	for _, v := range vols {
		if v.Marker == "" || v.Attachment == nil || v.Attachment.InstanceID != in.ID || v.State != VolumeInUse {
			t.Errorf("volume = %+v", v)
		}
	}

	var one controlInstance
	if code := control(t, srv, "GET", "/_sim/instances/"+in.ID, "", &one); code != 200 || one.ID != in.ID {
		t.Errorf("one instance: %d %+v", code, one)
	}
	var e map[string]string
	if code := control(t, srv, "GET", "/_sim/instances/i-0000000000000dead", "", &e); code != 404 || e["code"] != "InvalidInstanceID.NotFound" {
		t.Errorf("unknown instance: %d %v", code, e)
	}
}

func TestControlInterruptAndRebalance(t *testing.T) {
	srv := startControl(t, Options{})
	r := srv.Region()
	var mu sync.Mutex
	var seen []Event
	r.Subscribe(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, e)
	})
	spot := launchForTest(t, r, LaunchSpec{InstanceType: "m5.large", Spot: true})
	od := launchForTest(t, r, LaunchSpec{InstanceType: "m5.large"})

	var got controlInstance
	if code := control(t, srv, "POST", "/_sim/instances/"+spot.ID+"/rebalance", "", &got); code != 200 || got.Rebalance == nil {
		t.Errorf("rebalance: %d %+v", code, got)
	}
	if code := control(t, srv, "POST", "/_sim/instances/"+spot.ID+"/interrupt", `{"action":"stop"}`, &got); code != 200 ||
		got.Interruption == nil || got.Interruption.Action != "stop" || got.Interruption.Time.Sub(got.Interruption.Notice) != 2*time.Minute {
		t.Errorf("interrupt: %d %+v", code, got.Interruption)
	}
	var e map[string]string
	if code := control(t, srv, "POST", "/_sim/instances/"+od.ID+"/interrupt", "", &e); code != 400 || !strings.Contains(e["error"], "not a spot instance") {
		t.Errorf("interrupting on-demand: %d %v", code, e)
	}
	if code := control(t, srv, "POST", "/_sim/instances/"+spot.ID+"/interrupt", `{"action":"explode"}`, &e); code != 400 {
		t.Errorf("bad action: %d %v", code, e)
	}
	if code := control(t, srv, "POST", "/_sim/instances/i-0000000000000dead/rebalance", "", &e); code != 404 {
		t.Errorf("unknown instance: %d %v", code, e)
	}

	r.Advance(2*time.Minute + time.Second)
	r.Advance(r.Latencies().Stopping + time.Second)
	if in, _ := r.Instance(spot.ID); in.State != StateStopped || in.StateReason != "Server.SpotInstanceShutdown" {
		t.Errorf("after the notice: %s (%s), want stopped", in.State, in.StateReason)
	}

	mu.Lock()
	defer mu.Unlock()
	var kinds []string
	for _, ev := range seen {
		if ev.Detail["instance-id"] != spot.ID {
			continue
		}
		k := ev.DetailType
		if s, ok := ev.Detail["state"]; ok {
			k += ":" + s.(string)
		}
		if a, ok := ev.Detail["instance-action"]; ok {
			k += ":" + a.(string)
		}
		kinds = append(kinds, k)
	}
	want := []string{
		DetailStateChange + ":pending", DetailRebalance, DetailSpotInterruption + ":stop",
		DetailStateChange + ":running", DetailStateChange + ":stopping", DetailStateChange + ":stopped",
	}
	if strings.Join(kinds, "|") != strings.Join(want, "|") {
		t.Errorf("events =\n%s\nwant\n%s", strings.Join(kinds, "\n"), strings.Join(want, "\n"))
	}

	var evs []map[string]any
	control(t, srv, "GET", "/_sim/events", "", &evs)
	if len(evs) < len(want) {
		t.Errorf("GET events: %d events", len(evs))
	}
}

func TestControlEventJSON(t *testing.T) {
	e := Event{ID: "7bf73129-1428-4cd3-a780-95db273d1602", Source: "aws.ec2", DetailType: DetailSpotInterruption,
		Time:      time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Resources: []string{"i-1234567890abcdef0"},
		Detail:    map[string]any{"instance-id": "i-1234567890abcdef0", "instance-action": "terminate"}}
	got := string(e.JSON("123456789012", "us-east-2"))
	want := `{"version":"0","id":"7bf73129-1428-4cd3-a780-95db273d1602","detail-type":"EC2 Spot Instance Interruption Warning",` +
		`"source":"aws.ec2","account":"123456789012","time":"2026-03-01T12:00:00Z","region":"us-east-2",` +
		`"resources":["arn:aws:ec2:us-east-2:123456789012:instance/i-1234567890abcdef0"],` +
		`"detail":{"instance-action":"terminate","instance-id":"i-1234567890abcdef0"}}`
	if got != want {
		t.Errorf("JSON =\n%s\nwant\n%s", got, want)
	}
}

func TestControlCapacity(t *testing.T) {
	srv := startControl(t, Options{})
	r := srv.Region()
	var pools []controlPool
	if code := control(t, srv, "POST", "/_sim/capacity", `{"instanceType":"m5.large","az":"us-east-1a","market":"spot","count":0}`, &pools); code != 200 ||
		len(pools) != 1 || pools[0].Count != 0 {
		t.Fatalf("capacity: %d %+v", code, pools)
	}
	var apiErr *APIError
	r.Do(func() {
		sn := ""
		for _, s := range r.subnets {
			if s.AZ == "us-east-1a" {
				sn = s.ID
			}
		}
		_, apiErr = r.launch(LaunchSpec{ImageID: "ami-1", InstanceType: "m5.large", SubnetID: sn, Spot: true})
	})
	if apiErr == nil || apiErr.Code != CodeInsufficientCapacity {
		t.Errorf("launch into an empty pool: %v", apiErr)
	}
	control(t, srv, "POST", "/_sim/capacity", `{"instanceType":"m5.large","az":"us-east-1a","market":"spot","count":-1}`, &pools)
	if len(pools) != 0 {
		t.Errorf("after count -1: %+v", pools)
	}
	var e map[string]string
	for _, body := range []string{
		`{"instanceType":"m5.large","az":"us-east-1z","count":1}`,
		`{"instanceType":"large","az":"us-east-1a","count":1}`,
		`{"instanceType":"m5.large","az":"us-east-1a","market":"reserved","count":1}`,
		`{"instanceType":"m5.large","az":"us-east-1a"}`,
		`{"instanceType":"m5.large","az":"us-east-1a","count":1,"extra":true}`,
	} {
		if code := control(t, srv, "POST", "/_sim/capacity", body, &e); code != 400 || e["error"] == "" {
			t.Errorf("capacity %s: %d %v, want 400", body, code, e)
		}
	}
}

func TestControlFaults(t *testing.T) {
	srv := startControl(t, Options{})
	r := srv.Region()
	ec2Call := func() (int, string) {
		resp, err := http.Post(srv.URL(), "application/x-www-form-urlencoded",
			bytes.NewBufferString("Action=DescribeAvailabilityZones&Version=2016-11-15"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var out map[string]any
	if code := control(t, srv, "POST", "/_sim/throttle", `{"scope":"ec2:DescribeAvailabilityZones","next":2}`, &out); code != 200 {
		t.Fatalf("throttle next: %d %v", code, out)
	}
	for i := 0; i < 2; i++ {
		if code, body := ec2Call(); code != 503 || !strings.Contains(body, "RequestLimitExceeded") {
			t.Errorf("throttled call %d: %d %s", i, code, body)
		}
	}
	if code, _ := ec2Call(); code != 200 {
		t.Errorf("third call: %d", code)
	}

	control(t, srv, "POST", "/_sim/throttle", `{"scope":"ec2","rate":1}`, &out)
	if code, _ := ec2Call(); code != 503 {
		t.Errorf("rate 1: %d", code)
	}
	control(t, srv, "POST", "/_sim/throttle", `{"scope":"ec2","rate":0}`, &out)
	if code, _ := ec2Call(); code != 200 {
		t.Errorf("rate 0: %d", code)
	}

	control(t, srv, "POST", "/_sim/fail", `{"scope":"ec2","code":"InsufficientInstanceCapacity","message":"none left"}`, &out)
	// A capacity error is a server error on AWS (HTTP 500), and so it is here by default.
	if code, body := ec2Call(); code != 500 || !strings.Contains(body, "InsufficientInstanceCapacity") || !strings.Contains(body, "none left") {
		t.Errorf("failed call: %d %s", code, body)
	}

	control(t, srv, "POST", "/_sim/latency", `{"scope":"ec2","ms":150}`, &out)
	start := time.Now()
	ec2Call()
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("call with 150ms latency took %v", d)
	}
	control(t, srv, "POST", "/_sim/faults/clear", "", &out)
	start = time.Now()
	ec2Call()
	if d := time.Since(start); d >= 150*time.Millisecond {
		t.Errorf("call after clearing faults took %v", d)
	}

	var calls []CallCount
	control(t, srv, "GET", "/_sim/calls", "", &calls)
	if len(calls) != 1 || calls[0].Action != "ec2:DescribeAvailabilityZones" || calls[0].Count != 8 {
		t.Errorf("calls = %+v", calls)
	}
	control(t, srv, "POST", "/_sim/calls/reset", "", &out)
	if n := r.CallsTotal(); n != 0 {
		t.Errorf("calls after reset = %d", n)
	}

	var e map[string]string
	for path, body := range map[string]string{
		"/_sim/throttle": `{"scope":"ec2","rate":2}`,
		"/_sim/latency":  `{"scope":"","ms":5}`,
		"/_sim/fail":     `{"scope":"ec2"}`,
	} {
		if code := control(t, srv, "POST", path, body, &e); code != 400 || e["error"] == "" {
			t.Errorf("%s %s: %d %v, want 400", path, body, code, e)
		}
	}
	if code := control(t, srv, "POST", "/_sim/throttle", `{"scope":"ec2","rate":0.5,"next":1}`, &e); code != 400 {
		t.Errorf("rate and next: %d", code)
	}
}

func TestControlGroups(t *testing.T) {
	srv := startControl(t, Options{})
	r := srv.Region()
	in := launchForTest(t, r, LaunchSpec{InstanceType: "m5.large", Spot: true})
	r.Do(func() {
		r.asgs["web"] = &ASG{Name: "web", Min: 1, Max: 4, Desired: 1, Subnets: []string{in.SubnetID},
			LaunchTemplate: &LaunchTemplateRef{Name: "web-spot", Version: "$Latest"},
			Tags:           []ASGTag{{Key: "spotmax:group", Value: "web", PropagateAtLaunch: true}},
			Members:        []*ASGMember{{InstanceID: in.ID, LifecycleState: "InService", HealthStatus: "Healthy"}}}
	})
	var groups []controlGroup
	if code := control(t, srv, "GET", "/_sim/groups", "", &groups); code != 200 || len(groups) != 1 {
		t.Fatalf("groups: %d %+v", code, groups)
	}
	g := groups[0]
	if g.Name != "web" || g.Max != 4 || g.LaunchTemplate != "web-spot:$Latest" || len(g.Tags) != 1 || !g.Tags[0].PropagateAtLaunch ||
		len(g.Members) != 1 || g.Members[0].InstanceID != in.ID || g.Members[0].Market != "spot" {
		t.Errorf("group = %+v", g)
	}
	var list []controlInstance
	control(t, srv, "GET", "/_sim/instances", "", &list)
	if list[0].Group != "web" || list[0].TargetLifecycleState != "InService" {
		t.Errorf("instance group = %q, target state %q", list[0].Group, list[0].TargetLifecycleState)
	}
}
