package awsproto

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/smithy-go/encoding/cbor"
)

// Wire protocols.
const (
	ProtoEC2   = "ec2"   // EC2 query: form in, XML out, EC2 error shape
	ProtoQuery = "query" // AWS query: form in, XML out, ErrorResponse shape
	ProtoJSON  = "json"  // AWS JSON 1.0 and 1.1 (X-Amz-Target)
	ProtoCBOR  = "cbor"  // Smithy RPC v2 CBOR
)

// Call is one API request being served: who it is for (service, action, protocol), its input
// (a form for the query protocols, a body for JSON and CBOR) and the writer of its response.
type Call struct {
	w         http.ResponseWriter
	req       *http.Request
	spec      *Service
	Service   string // the SigV4 signing name
	Action    string
	Protocol  string
	Form      Params // query protocols
	Body      []byte // JSON and CBOR protocols (decompressed)
	RequestID string
	AccessKey string
	// XMLNS is the namespace of XML responses; the service's, unless a handler serves another
	// API version under the same signing name (Classic ELB).
	XMLNS   string
	written bool
}

// Request returns the HTTP request (its Host for queue URLs, its context for long polls).
func (c *Call) Request() *http.Request { return c.req }

// Written reports whether a response or an error was written.
func (c *Call) Written() bool { return c.written }

// Fail writes err in the error format of the call's protocol.
func (c *Call) Fail(err *APIError) {
	c.written = true
	h := c.w.Header()
	h.Set("x-amzn-RequestId", c.RequestID)
	fault := "Sender"
	if !err.Sender() {
		fault = "Receiver"
	}
	switch c.Protocol {
	case ProtoEC2:
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
	case ProtoJSON:
		h.Set("Content-Type", c.JSONContentType())
		h.Set("x-amzn-query-error", err.Code+";"+fault)
		c.w.WriteHeader(err.Status)
		_ = json.NewEncoder(c.w).Encode(map[string]string{"__type": c.spec.JSONNamespace + c.errorShape(err.Code), "message": err.Message})
	case ProtoCBOR:
		h.Set("Content-Type", "application/cbor")
		h.Set("Smithy-Protocol", "rpc-v2-cbor")
		// awsQueryCompatible clients take the error code from this header.
		h.Set("x-amzn-query-error", err.Code+";"+fault)
		c.w.WriteHeader(err.Status)
		_, _ = c.w.Write(cbor.Encode(cbor.Map{
			"__type":  cbor.String(c.spec.CBORNamespace + c.errorShape(err.Code)),
			"message": cbor.String(err.Message),
		}))
	default:
		h.Set("Content-Type", "text/xml")
		c.w.WriteHeader(err.Status)
		var b bytes.Buffer
		b.WriteString(xml.Header)
		fmt.Fprintf(&b, `<ErrorResponse xmlns=%q><Error><Type>%s</Type><Code>`, c.XMLNS, fault)
		xml.EscapeText(&b, []byte(err.Code))
		b.WriteString("</Code><Message>")
		xml.EscapeText(&b, []byte(err.Message))
		b.WriteString("</Message></Error><RequestId>")
		b.WriteString(c.RequestID)
		b.WriteString("</RequestId></ErrorResponse>")
		_, _ = c.w.Write(b.Bytes())
	}
}

// errorShape returns the name of the error structure for an error code of the call's service.
func (c *Call) errorShape(code string) string {
	if shape, ok := c.spec.ErrorShapes[code]; ok {
		return shape
	}
	return code
}

// WriteEC2 writes an EC2 query response: body is marshalled as <{Action}Response> with a
// requestId element first. body's fields are the response's children.
func (c *Call) WriteEC2(body any) {
	var inner bytes.Buffer
	if body != nil {
		enc := xml.NewEncoder(&inner)
		if err := enc.EncodeElement(body, xml.StartElement{Name: xml.Name{Local: "x"}}); err != nil {
			c.Fail(&APIError{Status: 500, Code: "InternalError", Message: err.Error()})
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
	fmt.Fprintf(&b, `<%sResponse xmlns=%q><requestId>%s</requestId>`, c.Action, c.XMLNS, c.RequestID)
	b.WriteString(s)
	fmt.Fprintf(&b, `</%sResponse>`, c.Action)
	c.WriteRaw("text/xml;charset=UTF-8", b.Bytes())
}

// WriteQuery writes an AWS query response: <{Action}Response><{Action}Result>result
// </{Action}Result><ResponseMetadata/></{Action}Response>. A nil result writes no Result element.
func (c *Call) WriteQuery(result any) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, `<%sResponse xmlns=%q>`, c.Action, c.XMLNS)
	if result != nil {
		enc := xml.NewEncoder(&b)
		if err := enc.EncodeElement(result, xml.StartElement{Name: xml.Name{Local: c.Action + "Result"}}); err != nil {
			c.Fail(&APIError{Status: 500, Code: "InternalError", Message: err.Error()})
			return
		}
		_ = enc.Flush()
	}
	fmt.Fprintf(&b, `<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`, c.RequestID, c.Action)
	c.WriteRaw("text/xml", b.Bytes())
}

// WriteJSON writes an AWS JSON response.
func (c *Call) WriteJSON(v any) {
	if v == nil {
		v = struct{}{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		c.Fail(&APIError{Status: 500, Code: "InternalError", Message: err.Error()})
		return
	}
	c.WriteRaw(c.JSONContentType(), b)
}

// JSONContentType answers in the AWS JSON version of the request: 1.0 (SQS) or 1.1 (EventBridge).
func (c *Call) JSONContentType() string {
	if strings.HasPrefix(c.req.Header.Get("Content-Type"), "application/x-amz-json-1.1") {
		return "application/x-amz-json-1.1"
	}
	return "application/x-amz-json-1.0"
}

// WriteCBOR writes a Smithy RPC v2 CBOR response.
func (c *Call) WriteCBOR(v cbor.Value) {
	c.w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	if v == nil {
		v = cbor.Map{}
	}
	c.WriteRaw("application/cbor", cbor.Encode(v))
}

// WriteRaw writes a successful response body of the given content type.
func (c *Call) WriteRaw(contentType string, b []byte) {
	c.written = true
	c.w.Header().Set("Content-Type", contentType)
	c.w.Header().Set("x-amzn-RequestId", c.RequestID)
	c.w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(b)
}

// NotServed is the error for an action a service does not simulate.
func NotServed(c *Call) *APIError {
	return &APIError{Status: http.StatusBadRequest, Code: CodeInvalidAction,
		Message: fmt.Sprintf("The action %s is not valid for this web service (the simulated region does not serve it).", c.Action)}
}
