package sim

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// Wire protocols.
const (
	protoEC2   = "ec2"   // EC2 query: form in, XML out, EC2 error shape
	protoQuery = "query" // AWS query: form in, XML out, ErrorResponse shape
	protoJSON  = "json"  // AWS JSON 1.0 (X-Amz-Target)
	protoCBOR  = "cbor"  // Smithy RPC v2 CBOR
)

// service is one AWS service of the simulated region.
type service struct {
	// name is the SigV4 signing name: ec2, autoscaling, monitoring, sqs, events.
	name string
	// xmlns is the namespace of XML responses.
	xmlns string
	// setup runs once per Region, in New, for per-region state and hooks.
	setup func(r *Region)
	// handle serves one call.
	handle func(r *Region, c *call)
	// errorShapes maps the error codes that APIError carries (the query protocol's codes) to the
	// error structures that JSON and CBOR responses name in __type, where the two differ
	// (sqs: AWS.SimpleQueueService.NonExistentQueue → QueueDoesNotExist).
	errorShapes map[string]string
}

var services = map[string]*service{}

// registerService adds a service; service files call it from init.
func registerService(s *service) { services[s.name] = s }

// call is one API request being served.
type call struct {
	w         http.ResponseWriter
	req       *http.Request
	Service   string
	Action    string
	Protocol  string
	Form      params // query protocols
	Body      []byte // JSON and CBOR protocols (decompressed)
	RequestID string
	AccessKey string
	xmlns     string
	written   bool
}

// Server serves a Region over HTTP on a loopback port.
type Server struct {
	region *Region
	ln     net.Listener
	srv    *http.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// Start creates a Region and serves it on addr (host:port; "127.0.0.1:0" picks a free port).
// The server runs until Close or until ctx ends.
func Start(ctx context.Context, addr string, opts Options) (*Server, error) {
	return Serve(ctx, addr, New(opts))
}

// Serve serves an existing Region on addr.
func Serve(ctx context.Context, addr string, r *Region) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Server{region: r, ln: ln, cancel: cancel, done: make(chan struct{})}
	s.srv = &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go r.Run(ctx)
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	go func() {
		<-ctx.Done()
		_ = s.srv.Close()
		r.closeEndpoints()
	}()
	return s, nil
}

// Region returns the served region.
func (s *Server) Region() *Region { return s.region }

// URL returns the endpoint URL for AWS_ENDPOINT_URL, e.g. http://127.0.0.1:4566.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Addr returns the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server, the region's clock loop and every IMDS endpoint.
func (s *Server) Close() error {
	s.cancel()
	<-s.done
	s.region.closeEndpoints()
	return nil
}

// closeHooks are run by closeEndpoints; the IMDS code registers its listeners here.
func (r *Region) closeEndpoints() {
	r.mu.Lock()
	hooks := r.closers
	r.closers = nil
	r.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
}

// Handler returns the region's HTTP handler: the AWS APIs, and the control API under /_sim/.
func (r *Region) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/_sim/", r.controlHandler())
	mux.HandleFunc("/", r.serveAPI)
	return mux
}

func (r *Region) serveAPI(w http.ResponseWriter, req *http.Request) {
	body, err := readBody(req)
	if err != nil {
		http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	c := &call{w: w, req: req, RequestID: r.newRequestID()}
	scopeSvc, akid := credentialScope(req.Header.Get("Authorization"))
	c.AccessKey = akid
	switch {
	case strings.EqualFold(req.Header.Get("Smithy-Protocol"), "rpc-v2-cbor"):
		c.Protocol = protoCBOR
		c.Body = body
		// /service/{ServiceName}/operation/{Operation}
		parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
		if len(parts) == 4 && parts[0] == "service" && parts[2] == "operation" {
			c.Action = parts[3]
			if scopeSvc == "" && parts[1] == "GraniteServiceVersion20100801" {
				scopeSvc = "monitoring"
			}
		}
	case strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-amz-json"):
		c.Protocol = protoJSON
		c.Body = body
		target := req.Header.Get("X-Amz-Target")
		if i := strings.LastIndexByte(target, '.'); i >= 0 {
			c.Action = target[i+1:]
			if scopeSvc == "" {
				switch target[:i] {
				case "AmazonSQS":
					scopeSvc = "sqs"
				case "AWSEvents":
					scopeSvc = "events"
				case "GraniteServiceVersion20100801":
					scopeSvc = "monitoring"
				case "Logs_20140328":
					scopeSvc = "logs"
				case "AWSPriceListService":
					scopeSvc = "pricing"
				}
			}
		}
	default:
		form, err := url.ParseQuery(string(body))
		if err != nil {
			http.Error(w, "parsing form: "+err.Error(), http.StatusBadRequest)
			return
		}
		for k, v := range req.URL.Query() {
			form[k] = append(form[k], v...)
		}
		c.Form = params{form}
		c.Action = form.Get("Action")
		c.Protocol = protoQuery
		if scopeSvc == "" {
			switch form.Get("Version") {
			case "2016-11-15":
				scopeSvc = "ec2"
			case "2011-01-01":
				scopeSvc = "autoscaling"
			case "2010-08-01":
				scopeSvc = "monitoring"
			case sqsQueryVersion:
				scopeSvc = "sqs"
			case elbv2Version, elbv1Version:
				scopeSvc = "elasticloadbalancing"
			}
		}
		if scopeSvc == "ec2" {
			c.Protocol = protoEC2
		}
	}
	svc := services[scopeSvc]
	c.Service = scopeSvc
	if svc == nil {
		c.Protocol = protoQuery
		c.fail(&APIError{Status: http.StatusBadRequest, Code: "UnrecognizedClientException",
			Message: fmt.Sprintf("the simulated region does not serve service %q", scopeSvc)})
		return
	}
	c.xmlns = svc.xmlns
	if c.Action == "" {
		c.fail(errf(CodeMissingParameter, "The request must contain the parameter Action"))
		return
	}
	r.mu.Lock()
	r.calls[c.Service+":"+c.Action]++
	if akid != "" {
		if r.callsBy[akid] == nil {
			r.callsBy[akid] = map[string]bool{}
		}
		r.callsBy[akid][c.Service+":"+c.Action] = true
	}
	fault, delay := r.injected(c.Service, c.Action)
	r.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
			return
		}
	}
	if fault != nil {
		c.fail(fault)
		return
	}
	svc.handle(r, c)
	if !c.written {
		c.fail(&APIError{Status: http.StatusInternalServerError, Code: "InternalError", Message: "no response written"})
	}
}

// credentialScope returns the service and access key id from a SigV4 Authorization header:
// "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ec2/aws4_request, SignedHeaders=..., ...".
func credentialScope(auth string) (service, akid string) {
	i := strings.Index(auth, "Credential=")
	if i < 0 {
		return "", ""
	}
	cred := auth[i+len("Credential="):]
	if j := strings.IndexAny(cred, ", "); j >= 0 {
		cred = cred[:j]
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 {
		return "", ""
	}
	return parts[3], parts[0]
}

func readBody(req *http.Request) ([]byte, error) {
	var rd io.Reader = http.MaxBytesReader(nil, req.Body, 64<<20)
	if strings.EqualFold(req.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		defer zr.Close()
		rd = zr
	}
	return io.ReadAll(rd)
}

// fail writes err in the error format of the call's protocol.
func (c *call) fail(err *APIError) {
	c.written = true
	h := c.w.Header()
	h.Set("x-amzn-RequestId", c.RequestID)
	switch c.Protocol {
	case protoEC2:
		h.Set("Content-Type", "text/xml;charset=UTF-8")
		c.w.WriteHeader(err.Status)
		var b bytes.Buffer
		b.WriteString(xml.Header)
		b.WriteString("<Response><Errors><Error><Code>")
		xml.EscapeText(&b, []byte(err.Code))
		b.WriteString("</Code><Message>")
		xml.EscapeText(&b, []byte(err.Message))
		b.WriteString("</Message></Error></Errors><RequestID>")
		b.WriteString(c.RequestID)
		b.WriteString("</RequestID></Response>")
		_, _ = c.w.Write(b.Bytes())
	case protoJSON:
		h.Set("Content-Type", c.jsonContentType())
		fault := "Sender"
		if !err.Sender() {
			fault = "Receiver"
		}
		h.Set("x-amzn-query-error", err.Code+";"+fault)
		c.w.WriteHeader(err.Status)
		_ = json.NewEncoder(c.w).Encode(map[string]string{"__type": jsonErrorNamespace(c.Service) + c.errorShape(err.Code), "message": err.Message})
	case protoCBOR:
		h.Set("Content-Type", "application/cbor")
		h.Set("Smithy-Protocol", "rpc-v2-cbor")
		fault := "Sender"
		if !err.Sender() {
			fault = "Receiver"
		}
		// awsQueryCompatible clients take the error code from this header.
		h.Set("x-amzn-query-error", err.Code+";"+fault)
		c.w.WriteHeader(err.Status)
		_, _ = c.w.Write(cbor.Encode(cbor.Map{
			"__type":  cbor.String(cborErrorNamespace(c.Service) + c.errorShape(err.Code)),
			"message": cbor.String(err.Message),
		}))
	default:
		h.Set("Content-Type", "text/xml")
		c.w.WriteHeader(err.Status)
		typ := "Sender"
		if !err.Sender() {
			typ = "Receiver"
		}
		var b bytes.Buffer
		b.WriteString(xml.Header)
		fmt.Fprintf(&b, `<ErrorResponse xmlns=%q><Error><Type>%s</Type><Code>`, c.xmlns, typ)
		xml.EscapeText(&b, []byte(err.Code))
		b.WriteString("</Code><Message>")
		xml.EscapeText(&b, []byte(err.Message))
		b.WriteString("</Message></Error><RequestId>")
		b.WriteString(c.RequestID)
		b.WriteString("</RequestId></ErrorResponse>")
		_, _ = c.w.Write(b.Bytes())
	}
}

func jsonErrorNamespace(svc string) string {
	switch svc {
	case "sqs":
		return "com.amazonaws.sqs#"
	case "events":
		return "com.amazonaws.eventbridge#"
	case "monitoring":
		return "com.amazonaws.cloudwatch#"
	}
	return ""
}

// errorShape returns the name of the error structure for an error code of the call's service.
func (c *call) errorShape(code string) string {
	if s := services[c.Service]; s != nil {
		if shape, ok := s.errorShapes[code]; ok {
			return shape
		}
	}
	return code
}

func cborErrorNamespace(svc string) string {
	if svc == "monitoring" {
		return "com.amazonaws.cloudwatch#"
	}
	return ""
}

// writeEC2 writes an EC2 query response: body is marshalled as <{Action}Response> with a
// requestId element first. body's fields are the response's children.
func (c *call) writeEC2(body any) {
	var inner bytes.Buffer
	if body != nil {
		enc := xml.NewEncoder(&inner)
		if err := enc.EncodeElement(body, xml.StartElement{Name: xml.Name{Local: "x"}}); err != nil {
			c.fail(&APIError{Status: 500, Code: "InternalError", Message: err.Error()})
			return
		}
	}
	// Strip the placeholder element <x>...</x> and keep its children.
	s := inner.String()
	s = strings.TrimPrefix(s, "<x>")
	s = strings.TrimSuffix(s, "</x>")
	if s == "<x></x>" {
		s = ""
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, `<%sResponse xmlns=%q><requestId>%s</requestId>`, c.Action, c.xmlns, c.RequestID)
	b.WriteString(s)
	fmt.Fprintf(&b, `</%sResponse>`, c.Action)
	c.writeRaw("text/xml;charset=UTF-8", b.Bytes())
}

// writeQuery writes an AWS query response: <{Action}Response><{Action}Result>result
// </{Action}Result><ResponseMetadata/></{Action}Response>. A nil result writes no Result element.
func (c *call) writeQuery(result any) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, `<%sResponse xmlns=%q>`, c.Action, c.xmlns)
	if result != nil {
		enc := xml.NewEncoder(&b)
		if err := enc.EncodeElement(result, xml.StartElement{Name: xml.Name{Local: c.Action + "Result"}}); err != nil {
			c.fail(&APIError{Status: 500, Code: "InternalError", Message: err.Error()})
			return
		}
		_ = enc.Flush()
	}
	fmt.Fprintf(&b, `<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`, c.RequestID, c.Action)
	c.writeRaw("text/xml", b.Bytes())
}

// writeJSON writes an AWS JSON response.
func (c *call) writeJSON(v any) {
	if v == nil {
		v = struct{}{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		c.fail(&APIError{Status: 500, Code: "InternalError", Message: err.Error()})
		return
	}
	c.writeRaw(c.jsonContentType(), b)
}

// jsonContentType answers in the AWS JSON version of the request: 1.0 (SQS) or 1.1 (EventBridge).
func (c *call) jsonContentType() string {
	if strings.HasPrefix(c.req.Header.Get("Content-Type"), "application/x-amz-json-1.1") {
		return "application/x-amz-json-1.1"
	}
	return "application/x-amz-json-1.0"
}

// writeCBOR writes a Smithy RPC v2 CBOR response.
func (c *call) writeCBOR(v cbor.Value) {
	c.w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	if v == nil {
		v = cbor.Map{}
	}
	c.writeRaw("application/cbor", cbor.Encode(v))
}

func (c *call) writeRaw(contentType string, b []byte) {
	c.written = true
	c.w.Header().Set("Content-Type", contentType)
	c.w.Header().Set("x-amzn-RequestId", c.RequestID)
	c.w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(b)
}

// errNotServed is returned for actions a service does not simulate.
func notServed(c *call) *APIError {
	return &APIError{Status: http.StatusBadRequest, Code: CodeInvalidAction,
		Message: fmt.Sprintf("The action %s is not valid for this web service (the simulated region does not serve it).", c.Action)}
}

var _ = errors.New
