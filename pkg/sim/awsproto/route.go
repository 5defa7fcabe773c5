package awsproto

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Service is how one AWS service of the simulated region is reached, how its errors are named,
// and its handler. Services register with a Mux; each owns its state.
type Service struct {
	// Name is the SigV4 signing name: ec2, autoscaling, monitoring, sqs, events, logs, pricing.
	Name string
	// XMLNS is the namespace of query/XML responses.
	XMLNS string
	// QueryProtocol is ProtoEC2 for EC2's own query dialect; other query services leave it empty.
	QueryProtocol string
	// JSONTargets, QueryVersions and CBORServices route requests that carry no SigV4 credential
	// scope: by X-Amz-Target prefix, by the form's Version, by the rpc-v2-cbor path's service.
	JSONTargets, QueryVersions, CBORServices []string
	// JSONNamespace and CBORNamespace prefix the error structure in __type
	// ("com.amazonaws.sqs#"); empty where the protocol names the bare structure.
	JSONNamespace, CBORNamespace string
	// ErrorShapes maps the error codes that APIError carries (the query protocol's codes) to
	// the error structures that JSON and CBOR responses name in __type, where the two differ
	// (sqs: AWS.SimpleQueueService.NonExistentQueue → QueueDoesNotExist).
	ErrorShapes map[string]string
	// Handle serves one call; it writes the response or the error.
	Handle func(c *Call)
}

// Mux routes AWS API requests to services by the service in their SigV4 credential scope.
type Mux struct {
	byName map[string]*Service
}

// Register adds a service; a second service of the same name replaces the first.
func (m *Mux) Register(s *Service) {
	if m.byName == nil {
		m.byName = map[string]*Service{}
	}
	m.byName[s.Name] = s
}

// Names returns the signing names of the registered services.
func (m *Mux) Names() []string {
	out := make([]string, 0, len(m.byName))
	for n := range m.byName {
		out = append(out, n)
	}
	return out
}

// Route reads req into a Call for one of the registered services. When the body cannot be read,
// the service is not served or the action is missing, it writes the error and returns nil.
func (m *Mux) Route(w http.ResponseWriter, req *http.Request, requestID string) *Call {
	body, err := readBody(req)
	if err != nil {
		http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
		return nil
	}
	c := &Call{w: w, req: req, RequestID: requestID, spec: &Service{}}
	scopeSvc, akid := CredentialScope(req.Header.Get("Authorization"))
	c.AccessKey = akid
	switch {
	case strings.EqualFold(req.Header.Get("Smithy-Protocol"), "rpc-v2-cbor"):
		c.Protocol = ProtoCBOR
		c.Body = body
		// /service/{ServiceName}/operation/{Operation}
		parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
		if len(parts) == 4 && parts[0] == "service" && parts[2] == "operation" {
			c.Action = parts[3]
			if scopeSvc == "" {
				scopeSvc = m.find(func(s *Service) []string { return s.CBORServices }, parts[1])
			}
		}
	case strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-amz-json"):
		c.Protocol = ProtoJSON
		c.Body = body
		target := req.Header.Get("X-Amz-Target")
		if i := strings.LastIndexByte(target, '.'); i >= 0 {
			c.Action = target[i+1:]
			if scopeSvc == "" {
				scopeSvc = m.find(func(s *Service) []string { return s.JSONTargets }, target[:i])
			}
		}
	default:
		form, err := url.ParseQuery(string(body))
		if err != nil {
			http.Error(w, "parsing form: "+err.Error(), http.StatusBadRequest)
			return nil
		}
		for k, v := range req.URL.Query() {
			form[k] = append(form[k], v...)
		}
		c.Form = Params{form}
		c.Action = form.Get("Action")
		c.Protocol = ProtoQuery
		if scopeSvc == "" {
			scopeSvc = m.find(func(s *Service) []string { return s.QueryVersions }, form.Get("Version"))
		}
		if s := m.byName[scopeSvc]; s != nil && s.QueryProtocol != "" {
			c.Protocol = s.QueryProtocol
		}
	}
	svc := m.byName[scopeSvc]
	c.Service = scopeSvc
	if svc == nil {
		c.Protocol = ProtoQuery
		c.Fail(&APIError{Status: http.StatusBadRequest, Code: "UnrecognizedClientException",
			Message: fmt.Sprintf("the simulated region does not serve service %q", scopeSvc)})
		return nil
	}
	c.spec = svc
	c.XMLNS = svc.XMLNS
	if c.Action == "" {
		c.Fail(Errorf(CodeMissingParameter, "The request must contain the parameter Action"))
		return nil
	}
	return c
}

// find returns the service whose keys (by key) contain v, or "".
func (m *Mux) find(key func(*Service) []string, v string) string {
	if v == "" {
		return ""
	}
	for name, s := range m.byName {
		for _, k := range key(s) {
			if k == v {
				return name
			}
		}
	}
	return ""
}

// Dispatch runs the call's service handler; a handler that wrote nothing answers InternalError.
func (c *Call) Dispatch() {
	c.spec.Handle(c)
	if !c.written {
		c.Fail(&APIError{Status: http.StatusInternalServerError, Code: "InternalError", Message: "no response written"})
	}
}

// CredentialScope returns the service and access key id from a SigV4 Authorization header:
// "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ec2/aws4_request, SignedHeaders=..., ...".
func CredentialScope(auth string) (service, akid string) {
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
