package sim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// startIMDSRegion serves a region with per-instance IMDS endpoints until the test ends.
func startIMDSRegion(t *testing.T, opts Options) *Server {
	t.Helper()
	opts.IMDS = true
	srv, err := Start(context.Background(), "127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// launchForTest launches one instance in the first default subnet of the region's first AZ.
func launchForTest(t *testing.T, r *Region, spec LaunchSpec) Instance {
	t.Helper()
	var out Instance
	var apiErr *APIError
	r.Do(func() {
		if spec.SubnetID == "" {
			for _, sn := range r.subnets {
				if sn.AZ == r.azs[0].Name {
					spec.SubnetID = sn.ID
				}
			}
		}
		if spec.ImageID == "" {
			spec.ImageID = "ami-0123456789abcdef0"
		}
		ins, err := r.launch(spec)
		if err != nil {
			apiErr = err
			return
		}
		out = cloneInstance(ins[0])
	})
	if apiErr != nil {
		t.Fatalf("launch: %v", apiErr)
	}
	return out
}

func imdsClient(t *testing.T, r *Region, id string) *imds.Client {
	t.Helper()
	url := r.IMDSURL(id)
	if url == "" {
		t.Fatalf("instance %s has no IMDS endpoint", id)
	}
	return imds.New(imds.Options{Endpoint: url})
}

func getMetadata(t *testing.T, c *imds.Client, path string) (string, error) {
	t.Helper()
	out, err := c.GetMetadata(context.Background(), &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", err
	}
	defer out.Content.Close()
	b, err := io.ReadAll(out.Content)
	return string(b), err
}

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func TestIMDSInstanceMetadataThroughSDK(t *testing.T) {
	srv := startIMDSRegion(t, Options{Region: "eu-west-1"})
	r := srv.Region()
	in := launchForTest(t, r, LaunchSpec{InstanceType: "m5.large", Spot: true, HTTPTokens: true,
		BlockDevices: []BlockDevice{{DeviceName: "/dev/sdf", VolumeSize: 20, DeleteOnTermination: true}}})
	c := imdsClient(t, r, in.ID)
	ctx := context.Background()

	for path, want := range map[string]string{
		"instance-id":                    in.ID,
		"instance-type":                  "m5.large",
		"ami-id":                         "ami-0123456789abcdef0",
		"local-ipv4":                     in.PrivateIP,
		"placement/availability-zone":    "eu-west-1a",
		"placement/availability-zone-id": "euw1-az1",
		"placement/region":               "eu-west-1",
		"instance-life-cycle":            "spot",
		"local-hostname":                 "ip-" + strings.ReplaceAll(in.PrivateIP, ".", "-") + ".eu-west-1.compute.internal",
		"block-device-mapping/root":      "/dev/xvda",
		"block-device-mapping/ebs1":      "sdf",
		"block-device-mapping":           "ami\nebs1\nroot",
	} {
		got, err := getMetadata(t, c, path)
		if err != nil {
			t.Errorf("GetMetadata(%s): %v", path, err)
			continue
		}
		if got != want {
			t.Errorf("GetMetadata(%s) = %q, want %q", path, got, want)
		}
	}
	mac, err := getMetadata(t, c, "mac")
	if err != nil || len(mac) != 17 {
		t.Errorf("mac = %q, %v", mac, err)
	}
	root, err := getMetadata(t, c, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"instance-id", "placement/", "block-device-mapping/", "events/"} {
		if !containsLine(root, want) {
			t.Errorf("meta-data listing lacks %q:\n%s", want, root)
		}
	}
	if containsLine(root, "tags/") || containsLine(root, "spot/") || containsLine(root, "autoscaling/") {
		t.Errorf("meta-data listing shows tags/, spot/ or autoscaling/ it should not:\n%s", root)
	}

	doc, err := c.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		t.Fatal(err)
	}
	d := doc.InstanceIdentityDocument
	if d.InstanceID != in.ID || d.AccountID != "123456789012" || d.Region != "eu-west-1" || d.AvailabilityZone != "eu-west-1a" ||
		d.InstanceType != "m5.large" || d.PrivateIP != in.PrivateIP || d.ImageID != in.ImageID || d.Architecture != "x86_64" ||
		d.Version != "2017-09-30" || !d.PendingTime.Equal(in.LaunchTime.Truncate(time.Second)) {
		t.Errorf("identity document = %+v", d)
	}
	reg, err := c.GetRegion(ctx, &imds.GetRegionInput{})
	if err != nil || reg.Region != "eu-west-1" {
		t.Errorf("GetRegion = %v, %v; want eu-west-1", reg, err)
	}
}

func containsLine(listing, line string) bool {
	for _, l := range strings.Split(listing, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func TestIMDSTags(t *testing.T) {
	srv := startIMDSRegion(t, Options{})
	r := srv.Region()
	tags := map[string]Tags{"instance": {"spotmax:group": "web", "Name": "web-1"}}
	with := launchForTest(t, r, LaunchSpec{InstanceType: "m5.large", MetadataTags: true, Tags: tags})
	without := launchForTest(t, r, LaunchSpec{InstanceType: "m5.large", Tags: tags})

	c := imdsClient(t, r, with.ID)
	keys, err := getMetadata(t, c, "tags/instance")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(keys, "\n")
	sort.Strings(got)
	if strings.Join(got, ",") != "Name,spotmax:group" {
		t.Errorf("tags/instance = %q, want Name and spotmax:group", keys)
	}
	v, err := getMetadata(t, c, "tags/instance/spotmax:group")
	if err != nil || v != "web" {
		t.Errorf("tags/instance/spotmax:group = %q, %v; want web", v, err)
	}
	if _, err := getMetadata(t, c, "tags/instance/nope"); httpStatus(err) != http.StatusNotFound {
		t.Errorf("unknown tag: err = %v, want 404", err)
	}

	c2 := imdsClient(t, r, without.ID)
	if _, err := getMetadata(t, c2, "tags/instance"); httpStatus(err) != http.StatusNotFound {
		t.Errorf("tags without MetadataTags: err = %v, want 404", err)
	}
	if _, err := getMetadata(t, c2, "tags/instance/spotmax:group"); httpStatus(err) != http.StatusNotFound {
		t.Errorf("tag without MetadataTags: err = %v, want 404", err)
	}
}

// rawIMDS does one request against an IMDS endpoint.
func rawIMDS(t *testing.T, method, url string, header map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestIMDSTokens(t *testing.T) {
	srv := startIMDSRegion(t, Options{})
	r := srv.Region()
	required := launchForTest(t, r, LaunchSpec{InstanceType: "m5.large", HTTPTokens: true})
	optional := launchForTest(t, r, LaunchSpec{InstanceType: "m5.large"})
	base := r.IMDSURL(required.ID)
	id := base + "/latest/meta-data/instance-id"

	if code, _, _ := rawIMDS(t, "GET", id, nil); code != http.StatusUnauthorized {
		t.Errorf("IMDSv1 with tokens required: status %d, want 401", code)
	}
	if code, body, _ := rawIMDS(t, "GET", r.IMDSURL(optional.ID)+"/latest/meta-data/instance-id", nil); code != 200 || body != optional.ID {
		t.Errorf("IMDSv1 with tokens optional: %d %q, want 200 %s", code, body, optional.ID)
	}
	for _, ttl := range []string{"", "0", "21601", "abc"} {
		h := map[string]string{}
		if ttl != "" {
			h["X-aws-ec2-metadata-token-ttl-seconds"] = ttl
		}
		if code, _, _ := rawIMDS(t, "PUT", base+"/latest/api/token", h); code != http.StatusBadRequest {
			t.Errorf("token with ttl %q: status %d, want 400", ttl, code)
		}
	}
	if code, _, _ := rawIMDS(t, "GET", base+"/latest/api/token", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET token: status %d, want 405", code)
	}
	code, tok, hdr := rawIMDS(t, "PUT", base+"/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
	if code != 200 || tok == "" || hdr.Get("X-aws-ec2-metadata-token-ttl-seconds") != "60" {
		t.Fatalf("token: %d %q ttl header %q", code, tok, hdr.Get("X-aws-ec2-metadata-token-ttl-seconds"))
	}
	withTok := map[string]string{"X-aws-ec2-metadata-token": tok}
	if code, body, _ := rawIMDS(t, "GET", id, withTok); code != 200 || body != required.ID {
		t.Errorf("with token: %d %q", code, body)
	}
	if code, _, _ := rawIMDS(t, "GET", r.IMDSURL(optional.ID)+"/latest/meta-data/instance-id", withTok); code != http.StatusUnauthorized {
		t.Errorf("another instance's token: status %d, want 401", code)
	}
	if code, _, _ := rawIMDS(t, "GET", id, map[string]string{"X-aws-ec2-metadata-token": "forged"}); code != http.StatusUnauthorized {
		t.Errorf("forged token: status %d, want 401", code)
	}

	r.Advance(61 * time.Second)
	if code, _, _ := rawIMDS(t, "GET", id, withTok); code != http.StatusUnauthorized {
		t.Errorf("token after its TTL of simulated time: status %d, want 401", code)
	}
	// A fresh SDK client gets a fresh token and carries on.
	if got, err := getMetadata(t, imdsClient(t, r, required.ID), "instance-id"); err != nil || got != required.ID {
		t.Errorf("new client after expiry: %q, %v", got, err)
	}
}

func TestIMDSTokenTTLHeaderIsRealTime(t *testing.T) {
	srv := startIMDSRegion(t, Options{TimeScale: 100})
	r := srv.Region()
	in := launchForTest(t, r, LaunchSpec{InstanceType: "m5.large", HTTPTokens: true})
	_, _, hdr := rawIMDS(t, "PUT", r.IMDSURL(in.ID)+"/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
	if got := hdr.Get("X-aws-ec2-metadata-token-ttl-seconds"); got != "216" {
		t.Errorf("ttl header at scale 100 = %q, want 216 real seconds", got)
	}
	// The SDK's default 5-minute token is 3 real seconds here: it must keep working.
	c := imdsClient(t, r, in.ID)
	for i := 0; i < 3; i++ {
		if _, err := getMetadata(t, c, "instance-id"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestIMDSInterruptionAndRebalance(t *testing.T) {
	srv := startIMDSRegion(t, Options{})
	r := srv.Region()
	in := launchForTest(t, r, LaunchSpec{InstanceType: "m5.large", Spot: true, HTTPTokens: true})
	c := imdsClient(t, r, in.ID)
	for _, p := range []string{"spot/instance-action", "spot/termination-time", "events/recommendations/rebalance"} {
		if _, err := getMetadata(t, c, p); httpStatus(err) != http.StatusNotFound {
			t.Errorf("%s before any notice: err = %v, want 404", p, err)
		}
	}

	if err := r.Rebalance(in.ID); err != nil {
		t.Fatal(err)
	}
	reb, err := getMetadata(t, c, "events/recommendations/rebalance")
	if err != nil {
		t.Fatal(err)
	}
	var rb struct {
		NoticeTime string `json:"noticeTime"`
	}
	if err := json.Unmarshal([]byte(reb), &rb); err != nil || rb.NoticeTime == "" {
		t.Errorf("rebalance = %q (%v)", reb, err)
	}

	if err := r.Interrupt(in.ID, ""); err != nil {
		t.Fatal(err)
	}
	want := r.Clock().Now().Add(2 * time.Minute).UTC()
	act, err := getMetadata(t, c, "spot/instance-action")
	if err != nil {
		t.Fatal(err)
	}
	var ia struct{ Action, Time string }
	if err := json.Unmarshal([]byte(act), &ia); err != nil {
		t.Fatalf("instance-action %q: %v", act, err)
	}
	at, err := time.Parse(time.RFC3339, ia.Time)
	if err != nil || ia.Action != "terminate" || at.Sub(want).Abs() > 2*time.Second {
		t.Errorf("instance-action = %q, want terminate at about %s", act, want.Format(time.RFC3339))
	}
	tt, err := getMetadata(t, c, "spot/termination-time")
	if err != nil || tt != ia.Time {
		t.Errorf("termination-time = %q, %v; want %s", tt, err, ia.Time)
	}
	listing, _ := getMetadata(t, c, "spot")
	if listing != "instance-action\ntermination-time" {
		t.Errorf("spot/ listing = %q", listing)
	}

	// After the notice the instance terminates and its endpoint closes.
	r.Advance(2*time.Minute + time.Second)
	r.Advance(r.Latencies().ShuttingDown + time.Second)
	got, _ := r.Instance(in.ID)
	if got.State != StateTerminated {
		t.Fatalf("state after the notice = %s, want terminated", got.State)
	}
	if r.IMDSURL(in.ID) != "" {
		t.Error("IMDSURL of a terminated instance is not empty")
	}
	conn, err := net.DialTimeout("tcp", got.IMDSAddr, time.Second)
	if err == nil {
		conn.Close()
		t.Errorf("IMDS of a terminated instance still accepts connections at %s", got.IMDSAddr)
	}
}

func TestIMDSTargetLifecycleState(t *testing.T) {
	srv := startIMDSRegion(t, Options{})
	r := srv.Region()
	in := launchForTest(t, r, LaunchSpec{InstanceType: "m5.large"})
	c := imdsClient(t, r, in.ID)
	if _, err := getMetadata(t, c, "autoscaling/target-lifecycle-state"); httpStatus(err) != http.StatusNotFound {
		t.Errorf("outside a group: err = %v, want 404", err)
	}
	r.Do(func() { r.instances[in.ID].Tags["aws:autoscaling:groupName"] = "web" })
	if got, err := getMetadata(t, c, "autoscaling/target-lifecycle-state"); err != nil || got != "InService" {
		t.Errorf("group member: %q, %v; want InService", got, err)
	}
	if err := r.SetTargetLifecycleState(in.ID, "Terminated"); err != nil {
		t.Fatal(err)
	}
	if got, err := getMetadata(t, c, "autoscaling/target-lifecycle-state"); err != nil || got != "Terminated" {
		t.Errorf("after SetTargetLifecycleState: %q, %v; want Terminated", got, err)
	}
	if err := r.SetTargetLifecycleState(in.ID, "Gone"); err == nil {
		t.Error("SetTargetLifecycleState accepted an unknown state")
	}
}

func TestIMDSDisabledByDefault(t *testing.T) {
	srv, err := Start(context.Background(), "127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	in := launchForTest(t, srv.Region(), LaunchSpec{InstanceType: "m5.large"})
	got, _ := srv.Region().Instance(in.ID)
	if got.IMDSAddr != "" || srv.Region().IMDSURL(in.ID) != "" {
		t.Errorf("IMDS address %q without Options.IMDS", got.IMDSAddr)
	}
}

func TestIMDSClosedWithServer(t *testing.T) {
	srv, err := Start(context.Background(), "127.0.0.1:0", Options{IMDS: true})
	if err != nil {
		t.Fatal(err)
	}
	in := launchForTest(t, srv.Region(), LaunchSpec{InstanceType: "m5.large"})
	got, _ := srv.Region().Instance(in.ID)
	if got.IMDSAddr == "" {
		t.Fatal("no IMDS address")
	}
	_ = srv.Close()
	// Another test may reuse the freed port at once, so ask the question only IMDS answers.
	c := &http.Client{Timeout: time.Second}
	req, _ := http.NewRequest(http.MethodPut, "http://"+got.IMDSAddr+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("IMDS still answering at %s after Server.Close", got.IMDSAddr)
		}
	}
	if srv.Region().IMDSURL(in.ID) != "" {
		t.Errorf("IMDSURL still set after Server.Close")
	}
}

func TestIMDSArchitecture(t *testing.T) {
	for typ, want := range map[string]string{"m5.large": "x86_64", "m6g.large": "arm64", "c7gn.xlarge": "arm64",
		"t4g.micro": "arm64", "g5.xlarge": "x86_64", "g4dn.xlarge": "x86_64", "m7i-flex.large": "x86_64"} {
		if got := imdsArchitecture(typ); got != want {
			t.Errorf("imdsArchitecture(%s) = %s, want %s", typ, got, want)
		}
	}
}
