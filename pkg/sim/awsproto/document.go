package awsproto

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// The document codec, for a service spoken over several protocols (CloudWatch: Smithy RPC v2
// CBOR for current SDKs, AWS JSON 1.0 and the AWS query protocol for older clients): each request
// is decoded into one generic Document and each response is built as one, so the service's
// actions are written once for every protocol.

// Document is a decoded request or a response being built: map[string]any nodes holding strings,
// numbers (float64, int64, json.Number), bools, time.Time, []byte, []any and nested trees.
type Document = map[string]any

// DecodeDocument returns the request's parameters as a Document.
func DecodeDocument(c *Call) (Document, *APIError) {
	switch c.Protocol {
	case ProtoCBOR:
		if len(bytes.TrimSpace(c.Body)) == 0 {
			return Document{}, nil
		}
		v, err := cbor.Decode(c.Body)
		if err != nil {
			return nil, Errorf("SerializationException", "decoding CBOR request: %v", err)
		}
		t, ok := cborToDoc(v).(Document)
		if !ok {
			return nil, Errorf("SerializationException", "the CBOR request body is not a map")
		}
		return t, nil
	case ProtoJSON:
		if len(bytes.TrimSpace(c.Body)) == 0 {
			return Document{}, nil
		}
		dec := json.NewDecoder(bytes.NewReader(c.Body))
		dec.UseNumber()
		var t Document
		if err := dec.Decode(&t); err != nil {
			return nil, Errorf("SerializationException", "decoding JSON request: %v", err)
		}
		return t, nil
	default:
		return queryToDoc(c.Form), nil
	}
}

// WriteDocument writes a response Document in the call's protocol.
func (c *Call) WriteDocument(out Document) {
	switch c.Protocol {
	case ProtoCBOR:
		c.WriteCBOR(docToCBOR(out))
	case ProtoJSON:
		c.WriteJSON(docToJSON(out))
	default:
		if len(out) == 0 {
			c.WriteQuery(nil)
			return
		}
		c.WriteQuery(xmlDoc{out})
	}
}

func cborToDoc(v cbor.Value) any {
	switch v := v.(type) {
	case cbor.String:
		return string(v)
	case cbor.Uint:
		if v > math.MaxInt64 {
			return float64(v)
		}
		return int64(v)
	case cbor.NegInt:
		if v == 0 || v > math.MaxInt64 {
			return -float64(v)
		}
		return -int64(v)
	case cbor.Float32:
		return float64(v)
	case cbor.Float64:
		return float64(v)
	case cbor.Bool:
		return bool(v)
	case cbor.Slice:
		return []byte(v)
	case cbor.List:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = cborToDoc(e)
		}
		return out
	case cbor.Map:
		out := make(Document, len(v))
		for k, e := range v {
			if x := cborToDoc(e); x != nil {
				out[k] = x
			}
		}
		return out
	case *cbor.Tag:
		if t, err := cbor.AsTime(v); err == nil {
			return t.UTC()
		}
		return cborToDoc(v.Value)
	}
	return nil // nil, undefined
}

func docToCBOR(v any) cbor.Value {
	switch v := v.(type) {
	case string:
		return cbor.String(v)
	case bool:
		return cbor.Bool(v)
	case int:
		return docCBORInt(int64(v))
	case int64:
		return docCBORInt(v)
	case float64:
		return cbor.Float64(v)
	case time.Time:
		return &cbor.Tag{ID: 1, Value: cbor.Float64(float64(v.UnixMilli()) / 1e3)}
	case []byte:
		return cbor.Slice(v)
	case []any:
		out := make(cbor.List, len(v))
		for i, e := range v {
			out[i] = docToCBOR(e)
		}
		return out
	case Document:
		out := make(cbor.Map, len(v))
		for k, e := range v {
			if e != nil {
				out[k] = docToCBOR(e)
			}
		}
		return out
	}
	return &cbor.Nil{}
}

func docCBORInt(n int64) cbor.Value {
	if n < 0 {
		return cbor.NegInt(uint64(-(n + 1)) + 1)
	}
	return cbor.Uint(n)
}

// docToJSON converts timestamps to epoch seconds, the AWS JSON protocols' default format.
func docToJSON(v any) any {
	switch v := v.(type) {
	case time.Time:
		return json.Number(strconv.FormatFloat(float64(v.UnixMilli())/1e3, 'f', -1, 64))
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = docToJSON(e)
		}
		return out
	case Document:
		out := make(Document, len(v))
		for k, e := range v {
			if e != nil {
				out[k] = docToJSON(e)
			}
		}
		return out
	}
	return v
}

// queryToDoc turns flattened query parameters (MetricData.member.1.Dimensions.member.2.Name) into a
// Document; "member" lists become []any and "entry" maps (entry.N.key / entry.N.value) become trees.
func queryToDoc(p Params) Document {
	root := Document{}
	for k, vs := range p.Values() {
		if k == "Action" || k == "Version" || len(vs) == 0 {
			continue
		}
		segs := strings.Split(k, ".")
		cur := root
		for i, s := range segs {
			if i == len(segs)-1 {
				if _, isNode := cur[s].(Document); !isNode {
					cur[s] = vs[0]
				}
				break
			}
			next, ok := cur[s].(Document)
			if !ok {
				next = Document{}
				cur[s] = next
			}
			cur = next
		}
	}
	return foldQueryDoc(root).(Document)
}

func foldQueryDoc(v any) any {
	t, ok := v.(Document)
	if !ok {
		return v
	}
	for k, e := range t {
		t[k] = foldQueryDoc(e)
	}
	if len(t) != 1 {
		return t
	}
	if m, ok := t["member"].(Document); ok {
		return queryIndexed(m)
	}
	if m, ok := t["entry"].(Document); ok {
		out := Document{}
		for _, e := range queryIndexed(m) {
			if kv, ok := e.(Document); ok {
				if key, ok := kv["key"].(string); ok {
					out[key] = kv["value"]
				}
			}
		}
		return out
	}
	return t
}

// queryIndexed orders the children of a query list by their 1-based index.
func queryIndexed(m Document) []any {
	type item struct {
		n int
		v any
	}
	var items []item
	for k, v := range m {
		n, err := strconv.Atoi(k)
		if err != nil {
			continue
		}
		items = append(items, item{n, v})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].n < items[j].n })
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

// xmlDoc marshals a Document as query-protocol XML: lists as <member> children, timestamps in
// ISO 8601. Children are written in name order.
type xmlDoc struct{ v any }

// MarshalXML implements xml.Marshaler.
func (x xmlDoc) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	switch v := x.v.(type) {
	case Document:
		if err := e.EncodeToken(start); err != nil {
			return err
		}
		keys := make([]string, 0, len(v))
		for k, e := range v {
			if e != nil {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := e.EncodeElement(xmlDoc{v[k]}, xml.StartElement{Name: xml.Name{Local: k}}); err != nil {
				return err
			}
		}
		return e.EncodeToken(start.End())
	case []any:
		if err := e.EncodeToken(start); err != nil {
			return err
		}
		for _, m := range v {
			if err := e.EncodeElement(xmlDoc{m}, xml.StartElement{Name: xml.Name{Local: "member"}}); err != nil {
				return err
			}
		}
		return e.EncodeToken(start.End())
	case time.Time:
		return e.EncodeElement(ISOTime(v), start)
	case float64:
		return e.EncodeElement(strconv.FormatFloat(v, 'g', -1, 64), start)
	default:
		return e.EncodeElement(fmt.Sprint(v), start)
	}
}

// Accessors that read a Document whatever protocol it came from. A malformed value is an
// InvalidParameterValue error naming the parameter.

func DocStr(t Document, k string) string {
	switch v := t[k].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

func DocHas(t Document, k string) bool { return t[k] != nil }

func DocFloat(t Document, k, name string) (float64, bool, *APIError) {
	switch v := t[k].(type) {
	case nil:
		return 0, false, nil
	case float64:
		return v, true, nil
	case int64:
		return float64(v), true, nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return 0, false, Errorf(CodeInvalidParameter, "The value %s for parameter %s is invalid.", v, name)
		}
		return f, true, nil
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, false, Errorf(CodeInvalidParameter, "The value %s for parameter %s is invalid.", v, name)
		}
		return f, true, nil
	}
	return 0, false, Errorf(CodeInvalidParameter, "The value for parameter %s is not a number.", name)
}

func DocInt(t Document, k, name string) (int64, bool, *APIError) {
	f, ok, err := DocFloat(t, k, name)
	if err != nil || !ok {
		return 0, ok, err
	}
	if f != math.Trunc(f) {
		return 0, false, Errorf(CodeInvalidParameter, "The value %v for parameter %s is not an integer.", f, name)
	}
	return int64(f), true, nil
}

func DocBool(t Document, k, name string) (bool, bool, *APIError) {
	switch v := t[k].(type) {
	case nil:
		return false, false, nil
	case bool:
		return v, true, nil
	case string:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, false, Errorf(CodeInvalidParameter, "The value %s for parameter %s is invalid.", v, name)
		}
		return b, true, nil
	}
	return false, false, Errorf(CodeInvalidParameter, "The value for parameter %s is not a boolean.", name)
}

func DocTime(t Document, k, name string) (time.Time, bool, *APIError) {
	switch v := t[k].(type) {
	case nil:
		return time.Time{}, false, nil
	case time.Time:
		return v, true, nil
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05", "2006-01-02"} {
			if tm, err := time.Parse(layout, v); err == nil {
				return tm.UTC(), true, nil
			}
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return epoch(f), true, nil
		}
		return time.Time{}, false, Errorf(CodeInvalidParameter, "The value %s for parameter %s is not a valid timestamp.", v, name)
	}
	f, ok, err := DocFloat(t, k, name)
	if err != nil || !ok {
		return time.Time{}, ok, err
	}
	return epoch(f), true, nil
}

func epoch(secs float64) time.Time {
	return time.UnixMilli(int64(math.Round(secs * 1e3))).UTC()
}

func DocList(t Document, k string) []any {
	l, _ := t[k].([]any)
	return l
}

func DocMap(v any) Document {
	t, _ := v.(Document)
	if t == nil {
		return Document{}
	}
	return t
}
