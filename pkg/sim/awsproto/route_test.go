package awsproto

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// testMux has a query service and a JSON service that echo what the kernel decoded.
func testMux() *Mux {
	m := &Mux{}
	m.Register(&Service{Name: "autoscaling", XMLNS: "urn:as", QueryVersions: []string{"2011-01-01"},
		Handle: func(c *Call) {
			if c.Form.Get("Fail") != "" {
				c.Fail(Errorf(CodeValidationError, "bad %s", c.Form.Get("Fail")))
				return
			}
			c.WriteQuery(struct{ Got string }{c.Form.Get("Name")})
		}})
	m.Register(&Service{Name: "sqs", JSONTargets: []string{"AmazonSQS"}, JSONNamespace: "com.amazonaws.sqs#",
		ErrorShapes: map[string]string{"AWS.SimpleQueueService.NonExistentQueue": "QueueDoesNotExist"},
		Handle: func(c *Call) {
			c.Fail(Errorf("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist."))
		}})
	m.Register(&Service{Name: "silent", QueryVersions: []string{"silent"}, Handle: func(*Call) {}})
	return m
}

func serve(m *Mux, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	if c := m.Route(w, req, "req-1"); c != nil {
		c.Dispatch()
	}
	return w
}

func TestRouteBySigV4ScopeAndByVersion(t *testing.T) {
	m := testMux()
	for name, req := range map[string]*http.Request{
		"signed":   httptest.NewRequest("POST", "/", strings.NewReader("Action=Describe&Name=web")),
		"unsigned": httptest.NewRequest("POST", "/", strings.NewReader("Action=Describe&Version=2011-01-01&Name=web")),
	} {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if name == "signed" {
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/autoscaling/aws4_request, SignedHeaders=host")
		}
		w := serve(m, req)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `<DescribeResponse xmlns="urn:as"><DescribeResult><Got>web</Got></DescribeResult>`) ||
			!strings.Contains(w.Body.String(), "<RequestId>req-1</RequestId>") {
			t.Errorf("%s: HTTP %d %s", name, w.Code, w.Body)
		}
	}
}

func TestRouteErrorsInEachProtocolsShape(t *testing.T) {
	m := testMux()
	// Query: ErrorResponse with Type, Code, Message.
	req := httptest.NewRequest("POST", "/", strings.NewReader("Action=Describe&Version=2011-01-01&Fail=x"))
	w := serve(m, req)
	if w.Code != 400 || !strings.Contains(w.Body.String(), "<Type>Sender</Type><Code>ValidationError</Code><Message>bad x</Message>") {
		t.Errorf("query error: HTTP %d %s", w.Code, w.Body)
	}
	// JSON: __type names the service's error structure, x-amzn-query-error keeps the query code.
	req = httptest.NewRequest("POST", "/", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", "AmazonSQS.GetQueueUrl")
	w = serve(m, req)
	var body map[string]string
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if w.Code != 400 || body["__type"] != "com.amazonaws.sqs#QueueDoesNotExist" ||
		w.Header().Get("x-amzn-query-error") != "AWS.SimpleQueueService.NonExistentQueue;Sender" {
		t.Errorf("JSON error: HTTP %d %v %v", w.Code, body, w.Header())
	}
	// A service the region does not serve, a missing action, a handler that writes nothing.
	req = httptest.NewRequest("POST", "/", strings.NewReader("Action=X&Version=1999-01-01"))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/kinesis/aws4_request")
	if w = serve(m, req); w.Code != 400 || !strings.Contains(w.Body.String(), `does not serve service &#34;kinesis&#34;`) {
		t.Errorf("unknown service: HTTP %d %s", w.Code, w.Body)
	}
	req = httptest.NewRequest("POST", "/", strings.NewReader("Version=2011-01-01"))
	if w = serve(m, req); w.Code != 400 || !strings.Contains(w.Body.String(), "<Code>MissingParameter</Code>") {
		t.Errorf("missing action: HTTP %d %s", w.Code, w.Body)
	}
	req = httptest.NewRequest("POST", "/", strings.NewReader("Action=X&Version=silent"))
	if w = serve(m, req); w.Code != 500 || !strings.Contains(w.Body.String(), "<Code>InternalError</Code>") {
		t.Errorf("silent handler: HTTP %d %s", w.Code, w.Body)
	}
}

func TestCredentialScope(t *testing.T) {
	svc, akid := CredentialScope("AWS4-HMAC-SHA256 Credential=AKIDX/20260101/us-east-1/monitoring/aws4_request, SignedHeaders=host, Signature=0")
	if svc != "monitoring" || akid != "AKIDX" {
		t.Errorf("CredentialScope = %q, %q", svc, akid)
	}
	if svc, akid := CredentialScope("Bearer x"); svc != "" || akid != "" {
		t.Errorf("no credential: %q, %q", svc, akid)
	}
}
