package sim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// regionSetups run at the end of New, after the services' setups, for region features that are
// not services (the per-instance IMDS endpoints and event notifications).
var regionSetups []func(*Region)

func init() {
	regionSetups = append(regionSetups, setupExtras)
}

// extKey is the key of the extras in Region.svc.
const extKey = "_sim/extras"

// extras is the per-region state of the IMDS endpoints and the event notifications. It lives in
// Region.svc and is accessed with the region's lock held.
type extras struct {
	closed   bool
	imds     map[string]*imdsEndpoint // by instance id
	notified map[string]*notifyState  // by instance id
	subs     []func(Event)
	recent   []Event
}

func (r *Region) ext() *extras {
	x, _ := r.svc[extKey].(*extras)
	if x == nil {
		x = &extras{imds: map[string]*imdsEndpoint{}, notified: map[string]*notifyState{}}
		r.svc[extKey] = x
	}
	return x
}

func setupExtras(r *Region) {
	r.ext()
	r.onStateChange(r.extrasHook)
	if r.opts.IMDS {
		r.closers = append(r.closers, r.closeIMDS)
	}
}

// extrasHook runs after an instance changes state (or receives a notice), with the lock held.
func (r *Region) extrasHook(in *Instance) {
	x := r.ext()
	r.notify(x, in)
	if r.opts.IMDS {
		r.syncIMDS(x, in)
	}
}

// IMDS token limits and headers, as AWS defines them.
const (
	imdsTokenHeader = "X-Aws-Ec2-Metadata-Token"
	imdsTTLHeader   = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	imdsMaxTTL      = 21600
)

// imdsEndpoint is the IMDS of one instance.
type imdsEndpoint struct {
	instanceID string
	srv        *http.Server
	// tokens maps IMDSv2 tokens to their expiry in simulated time.
	tokens map[string]time.Time
	// devices are the block-device mapping as IMDS shows it: fixed at launch, like AWS, which
	// lists only the volumes present when the instance was launched or last started.
	rootDevice string
	ebs        []string
}

// syncIMDS starts an instance's endpoint when it first appears and stops it once the instance
// is terminated. Creating a listener is fast, so it is done with the lock held; serving runs in
// its own goroutine until the endpoint is closed.
func (r *Region) syncIMDS(x *extras, in *Instance) {
	ep := x.imds[in.ID]
	if in.State == StateTerminated {
		if ep != nil {
			delete(x.imds, in.ID)
			_ = ep.srv.Close()
		}
		return
	}
	if ep != nil || x.closed || in.IMDSAddr != "" {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		// Without a port the instance simply has no IMDS, as if the endpoint were disabled.
		return
	}
	ep = &imdsEndpoint{instanceID: in.ID, tokens: map[string]time.Time{}, rootDevice: in.RootDevice}
	for _, bd := range in.BlockDevices {
		if bd.DeviceName != in.RootDevice {
			ep.ebs = append(ep.ebs, strings.TrimPrefix(bd.DeviceName, "/dev/"))
		}
	}
	ep.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { r.serveIMDS(ep, w, req) }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	x.imds[in.ID] = ep
	in.IMDSAddr = ln.Addr().String()
	go func() { _ = ep.srv.Serve(ln) }()
}

// closeIMDS stops every IMDS endpoint; no new ones start afterwards.
func (r *Region) closeIMDS() {
	r.mu.Lock()
	x := r.ext()
	x.closed = true
	eps := x.imds
	x.imds = map[string]*imdsEndpoint{}
	r.mu.Unlock()
	for _, ep := range eps {
		_ = ep.srv.Close()
	}
}

// IMDSURL returns the base URL of an instance's IMDS endpoint (http://127.0.0.1:PORT), for
// AWS_EC2_METADATA_SERVICE_ENDPOINT or imds.Options.Endpoint, or "" if it has none.
func (r *Region) IMDSURL(instanceID string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if in := r.instances[instanceID]; in != nil && in.IMDSAddr != "" {
		if _, open := r.ext().imds[instanceID]; open {
			return "http://" + in.IMDSAddr
		}
	}
	return ""
}

func (r *Region) serveIMDS(ep *imdsEndpoint, w http.ResponseWriter, req *http.Request) {
	h := w.Header()
	h.Set("Server", "EC2ws")
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	r.sched.runDue(now)
	in := r.instances[ep.instanceID]
	if in == nil {
		imdsError(w, http.StatusNotFound)
		return
	}
	path := req.URL.Path
	if path == "/latest/api/token" {
		r.imdsToken(ep, w, req, now)
		return
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		imdsError(w, http.StatusMethodNotAllowed)
		return
	}
	if tok := req.Header.Get(imdsTokenHeader); tok != "" {
		exp, ok := ep.tokens[tok]
		if !ok || !now.Before(exp) {
			imdsError(w, http.StatusUnauthorized)
			return
		}
	} else if in.HTTPTokensReq {
		imdsError(w, http.StatusUnauthorized)
		return
	}
	body, ok := r.imdsLookup(ep, in, path)
	if !ok {
		imdsError(w, http.StatusNotFound)
		return
	}
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}

// imdsToken serves PUT /latest/api/token. The TTL is simulated time; the TTL header of the
// response gives the token's life in real seconds (the requested TTL divided by the time scale,
// so equal to it at scale 1), which is what clients such as aws-sdk-go-v2 use to know when to
// fetch a new token. A client cannot foresee Region.Advance: a token it cached can be refused
// with 401 after a jump past its expiry, until the client fetches a new one.
func (r *Region) imdsToken(ep *imdsEndpoint, w http.ResponseWriter, req *http.Request, now time.Time) {
	if req.Method != http.MethodPut {
		w.Header().Set("Allow", "PUT")
		imdsError(w, http.StatusMethodNotAllowed)
		return
	}
	// AWS refuses token requests that went through a proxy, to stop SSRF relays.
	if req.Header.Get("X-Forwarded-For") != "" {
		imdsError(w, http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(strings.TrimSpace(req.Header.Get(imdsTTLHeader)))
	if err != nil || ttl < 1 || ttl > imdsMaxTTL {
		imdsError(w, http.StatusBadRequest)
		return
	}
	if r.beh.EC2.IMDSHopLimit && imdsHops(req) > r.instances[ep.instanceID].HopLimit {
		imdsDrop(w)
		return
	}
	for t, exp := range ep.tokens {
		if !now.Before(exp) {
			delete(ep.tokens, t)
		}
	}
	b := make([]byte, 30)
	r.rng.Read(b)
	tok := fmt.Sprintf("AQAEA%x==", b)
	ep.tokens[tok] = now.Add(time.Duration(ttl) * time.Second)
	realTTL := int(r.clock.Real(time.Duration(ttl)*time.Second) / time.Second)
	h := w.Header()
	h.Set(imdsTTLHeader, strconv.Itoa(realTTL))
	h.Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(tok))
}

// IMDSHopsHeader says how many network hops an IMDS request crossed on its way from the client:
// 1 (the default) for a process on the instance, 2 for a container behind a bridge network, and
// so on. A simulated instance has no network stack, so a test that plays a container says so
// with this header. AWS sends the token response of PUT /latest/api/token with an IP TTL of
// HttpPutResponseHopLimit, so a client more hops away never receives it; the simulated
// endpoint models that (EC2Behaviors.IMDSHopLimit) by never answering such a request.
const IMDSHopsHeader = "X-Sim-Imds-Hops"

// imdsHops returns the hops a request says it crossed (IMDSHopsHeader), 1 by default.
func imdsHops(req *http.Request) int {
	if n, err := strconv.Atoi(strings.TrimSpace(req.Header.Get(IMDSHopsHeader))); err == nil && n > 0 {
		return n
	}
	return 1
}

// imdsDrop answers nothing, as a token response whose packets ran out of hops: the connection
// stays open until the client gives up (or half a minute passes), then closes.
func imdsDrop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	go func() {
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, _ = io.Copy(io.Discard, conn)
		_ = conn.Close()
	}()
}

func imdsError(w http.ResponseWriter, status int) {
	text := fmt.Sprintf("%d - %s", status, http.StatusText(status))
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
	"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>%s</title>
 </head>
 <body>
  <h1>%s</h1>
 </body>
</html>
`, text, text)
}

// imdsLookup returns the document at path: a leaf's value, or a directory listing with one
// entry per line and a trailing "/" on subtrees, as AWS lists them.
func (r *Region) imdsLookup(ep *imdsEndpoint, in *Instance, path string) (string, bool) {
	if path == "/" || path == "" {
		return "latest", true
	}
	if !strings.HasPrefix(path, "/latest") {
		return "", false
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(path, "/latest"), "/")
	leaves := r.imdsLeaves(ep, in)
	if v, ok := leaves[rel]; ok && !strings.HasSuffix(path, "/") {
		return v, true
	}
	dir := strings.TrimSuffix(rel, "/")
	if dir != "" {
		dir += "/"
	}
	seen := map[string]bool{}
	var entries []string
	for k := range leaves {
		rest, ok := strings.CutPrefix(k, dir)
		if !ok || rest == "" {
			continue
		}
		name := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			name = rest[:i+1]
		}
		if !seen[name] {
			seen[name] = true
			entries = append(entries, name)
		}
	}
	if len(entries) == 0 {
		return "", false
	}
	sort.Strings(entries)
	return strings.Join(entries, "\n"), true
}

// imdsLeaves returns every document of an instance's IMDS, keyed by its path below /latest/.
func (r *Region) imdsLeaves(ep *imdsEndpoint, in *Instance) map[string]string {
	md := map[string]string{}
	mac := imdsMAC(in.ID)
	host := r.imdsHostname(in.PrivateIP)
	azID := in.AZ
	for _, az := range r.azs {
		if az.Name == in.AZ {
			azID = az.ID
		}
	}
	md["ami-id"] = in.ImageID
	md["ami-launch-index"] = "0"
	md["ami-manifest-path"] = "(unknown)"
	md["hostname"] = host
	md["instance-action"] = "none"
	md["instance-id"] = in.ID
	md["instance-life-cycle"] = in.Market
	md["instance-type"] = in.Type
	md["local-hostname"] = host
	md["local-ipv4"] = in.PrivateIP
	md["mac"] = mac
	md["placement/availability-zone"] = in.AZ
	md["placement/availability-zone-id"] = azID
	md["placement/region"] = r.opts.Region
	md["reservation-id"] = in.ReservationID
	md["services/domain"] = "amazonaws.com"
	md["services/partition"] = "aws"
	md["events/maintenance/scheduled"] = "[]"
	nic := "network/interfaces/macs/" + mac + "/"
	md[nic+"device-number"] = "0"
	md[nic+"local-hostname"] = host
	md[nic+"local-ipv4s"] = in.PrivateIP
	md[nic+"mac"] = mac
	md[nic+"subnet-id"] = in.SubnetID
	md[nic+"vpc-id"] = in.VPCID
	if sn := r.subnets[in.SubnetID]; sn != nil {
		md[nic+"subnet-ipv4-cidr-block"] = sn.CIDR
	}
	if vpc := r.vpcs[in.VPCID]; vpc != nil {
		md[nic+"vpc-ipv4-cidr-block"] = vpc.CIDR
	}
	md["block-device-mapping/ami"] = ep.rootDevice
	md["block-device-mapping/root"] = ep.rootDevice
	for i, dev := range ep.ebs {
		md[fmt.Sprintf("block-device-mapping/ebs%d", i+1)] = dev
	}
	if in.MetadataTags {
		for k, v := range in.Tags {
			// AWS does not expose keys that cannot be a path segment.
			if k == "" || strings.ContainsAny(k, "/ ") {
				continue
			}
			md["tags/instance/"+k] = v
		}
	}
	if it := in.Interruption; it != nil {
		t := it.Time.UTC().Format(imdsTimeFormat)
		b, _ := json.Marshal(struct {
			Action string `json:"action"`
			Time   string `json:"time"`
		}{it.Action, t})
		md["spot/instance-action"] = string(b)
		md["spot/termination-time"] = t
	}
	if in.Rebalance != nil {
		b, _ := json.Marshal(struct {
			NoticeTime string `json:"noticeTime"`
		}{in.Rebalance.UTC().Format(imdsTimeFormat)})
		md["events/recommendations/rebalance"] = string(b)
	}
	if s := r.imdsTargetLifecycleState(in); s != "" {
		md["autoscaling/target-lifecycle-state"] = s
	}

	out := make(map[string]string, len(md)+1)
	for k, v := range md {
		out["meta-data/"+k] = v
	}
	out["dynamic/instance-identity/document"] = r.identityDocument(in)
	return out
}

const imdsTimeFormat = "2006-01-02T15:04:05Z"

// imdsTargetLifecycleState is the instance's Auto Scaling target lifecycle state: the value the
// group set, or InService for a member of a group; "" when it is in no group.
func (r *Region) imdsTargetLifecycleState(in *Instance) string {
	if in.TargetLifecycleState != "" {
		return in.TargetLifecycleState
	}
	if r.ctlGroupOf(in) != "" {
		return "InService"
	}
	return ""
}

// ctlGroupOf returns the name of the Auto Scaling group an instance belongs to, or "".
func (r *Region) ctlGroupOf(in *Instance) string {
	for _, g := range r.asgs {
		if _, ok := g.Member(in.ID); ok {
			return g.Name
		}
	}
	return in.Tags["aws:autoscaling:groupName"]
}

func (r *Region) imdsHostname(ip string) string {
	name := "ip-" + strings.ReplaceAll(ip, ".", "-")
	if r.opts.Region == "us-east-1" {
		return name + ".ec2.internal"
	}
	return name + "." + r.opts.Region + ".compute.internal"
}

// imdsMAC derives a stable MAC address from an instance id.
func imdsMAC(id string) string {
	h := fnv.New64a()
	h.Write([]byte(id))
	s := h.Sum64()
	return fmt.Sprintf("0e:%02x:%02x:%02x:%02x:%02x", byte(s>>32), byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}

// identityDocument renders /latest/dynamic/instance-identity/document as AWS does.
func (r *Region) identityDocument(in *Instance) string {
	doc := struct {
		AccountID               string   `json:"accountId"`
		Architecture            string   `json:"architecture"`
		AvailabilityZone        string   `json:"availabilityZone"`
		BillingProducts         []string `json:"billingProducts"`
		DevpayProductCodes      []string `json:"devpayProductCodes"`
		MarketplaceProductCodes []string `json:"marketplaceProductCodes"`
		ImageID                 string   `json:"imageId"`
		InstanceID              string   `json:"instanceId"`
		InstanceType            string   `json:"instanceType"`
		KernelID                *string  `json:"kernelId"`
		PendingTime             string   `json:"pendingTime"`
		PrivateIP               string   `json:"privateIp"`
		RamdiskID               *string  `json:"ramdiskId"`
		Region                  string   `json:"region"`
		Version                 string   `json:"version"`
	}{
		AccountID:        r.opts.AccountID,
		Architecture:     imdsArchitecture(in.Type),
		AvailabilityZone: in.AZ,
		ImageID:          in.ImageID,
		InstanceID:       in.ID,
		InstanceType:     in.Type,
		PendingTime:      in.LaunchTime.UTC().Format(imdsTimeFormat),
		PrivateIP:        in.PrivateIP,
		Region:           r.opts.Region,
		Version:          "2017-09-30",
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return string(b)
}

// architecture guesses the CPU architecture from an instance type: Graviton families carry a
// "g" after the generation digit (m6g, c7gn, t4g); GPU families such as g5 start with one.
func imdsArchitecture(instanceType string) string {
	fam, _, _ := strings.Cut(instanceType, ".")
	i := strings.IndexAny(fam, "0123456789")
	if i < 0 {
		return "x86_64"
	}
	suffix := strings.TrimLeft(fam[i:], "0123456789")
	if strings.Contains(suffix, "g") {
		return "arm64"
	}
	return "x86_64"
}
