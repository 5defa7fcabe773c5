package sqs

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spotmax/spotmax/pkg/sim/awsproto"
)

// SQS over the AWS query protocol (Action=...&Version=2012-11-05 form posts, XML answers), which
// older SDKs and CLIs (Debian's aws CLI 2.9) speak. Every SQS action is served by its JSON handler:
// the form is turned into the JSON request and the JSON result into the query protocol's XML, with
// its flattened lists (Attribute, QueueUrl, Message, ...), as the SQS query API reference shows.

// queryVersion is the API version of SQS's query protocol.
const queryVersion = "2012-11-05"

// sqsQueryInts are the integer parameters of SQS's requests.
var sqsQueryInts = map[string]bool{"DelaySeconds": true, "MaxNumberOfMessages": true, "VisibilityTimeout": true,
	"WaitTimeSeconds": true, "MaxResults": true}

// sqsQueryLists are the flattened list parameters and the JSON members they stand for.
var sqsQueryLists = map[string]string{"AttributeName": "AttributeNames", "MessageAttributeName": "MessageAttributeNames",
	"MessageSystemAttributeName": "MessageSystemAttributeNames", "TagKey": "TagKeys"}

// sqsQueryToJSON turns a query request's form into the JSON request of its action.
func sqsQueryToJSON(action string, form awsproto.Params) ([]byte, *awsproto.APIError) {
	v := map[string]string{}
	for k, vs := range form.Values() {
		if k == "Action" || k == "Version" || len(vs) == 0 {
			continue
		}
		v[k] = vs[0]
	}
	obj, err := sqsQueryObject(v, action)
	if err != nil {
		return nil, err
	}
	b, e := json.Marshal(obj)
	if e != nil {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "encoding the request: %v", e)
	}
	return b, nil
}

// sqsQueryObject builds one JSON object from flattened query keys (relative to the object).
func sqsQueryObject(v map[string]string, action string) (map[string]any, *awsproto.APIError) {
	out := map[string]any{}
	groups := map[string]map[string]map[string]string{} // prefix → index → rest → value
	for k, val := range v {
		head, rest, nested := strings.Cut(k, ".")
		if !nested {
			if sqsQueryInts[k] {
				n, e := strconv.ParseInt(val, 10, 64)
				if e != nil {
					return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "Value %s for parameter %s is invalid. Reason: it is not an integer.", val, k)
				}
				out[k] = n
			} else {
				out[k] = val
			}
			continue
		}
		idx, sub, _ := strings.Cut(rest, ".")
		if groups[head] == nil {
			groups[head] = map[string]map[string]string{}
		}
		if groups[head][idx] == nil {
			groups[head][idx] = map[string]string{}
		}
		groups[head][idx][sub] = val
	}
	for head, byIdx := range groups {
		idxs := make([]string, 0, len(byIdx))
		for i := range byIdx {
			idxs = append(idxs, i)
		}
		sort.Slice(idxs, func(a, b int) bool {
			na, _ := strconv.Atoi(idxs[a])
			nb, _ := strconv.Atoi(idxs[b])
			return na < nb
		})
		switch {
		case sqsQueryLists[head] != "":
			var list []string
			for _, i := range idxs {
				list = append(list, byIdx[i][""])
			}
			out[sqsQueryLists[head]] = list
		case head == "Attribute":
			m := map[string]string{}
			for _, i := range idxs {
				m[byIdx[i]["Name"]] = byIdx[i]["Value"]
			}
			out["Attributes"] = m
		case head == "Tag":
			m := map[string]string{}
			for _, i := range idxs {
				m[byIdx[i]["Key"]] = byIdx[i]["Value"]
			}
			// CreateQueue names its tags in lower case in JSON.
			if action == "CreateQueue" {
				out["tags"] = m
			} else {
				out["Tags"] = m
			}
		case head == "MessageAttribute" || head == "MessageSystemAttribute":
			m := map[string]any{}
			for _, i := range idxs {
				val := map[string]any{}
				for k, s := range byIdx[i] {
					if f, ok := strings.CutPrefix(k, "Value."); ok {
						val[f] = s
					}
				}
				m[byIdx[i]["Name"]] = val
			}
			out[head+"s"] = m
		case strings.HasSuffix(head, "RequestEntry"):
			var list []any
			for _, i := range idxs {
				e, err := sqsQueryObject(byIdx[i], action)
				if err != nil {
					return nil, err
				}
				list = append(list, e)
			}
			out["Entries"] = list
		default:
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The parameter %s.%s is not a parameter of %s.", head, idxs[0], action)
		}
	}
	return out, nil
}

// sqsQueryElements names the flattened elements that JSON members become in query responses.
var sqsQueryElements = map[string]string{"Attributes": "Attribute", "Messages": "Message", "Failed": "BatchResultErrorEntry",
	"MessageAttributes": "MessageAttribute"}

// sqsWriteQuery writes a JSON handler's result as the query protocol's XML.
func sqsWriteQuery(c *awsproto.Call, out any) {
	var v any
	if out != nil {
		b, err := json.Marshal(out)
		if err != nil {
			c.Fail(&awsproto.APIError{Status: 500, Code: "InternalError", Message: err.Error()})
			return
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			c.Fail(&awsproto.APIError{Status: 500, Code: "InternalError", Message: err.Error()})
			return
		}
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, `<%sResponse xmlns=%q>`, c.Action, c.XMLNS)
	if m, ok := v.(map[string]any); ok && len(m) > 0 {
		fmt.Fprintf(&b, "<%sResult>", c.Action)
		sqsXMLFields(&b, c.Action, m)
		fmt.Fprintf(&b, "</%sResult>", c.Action)
	}
	fmt.Fprintf(&b, `<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`, c.RequestID, c.Action)
	c.WriteRaw("text/xml", b.Bytes())
}

func sqsXMLFields(b *bytes.Buffer, action string, m map[string]any) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := k
		if n, ok := sqsQueryElements[k]; ok {
			name = n
		} else if k == "Successful" {
			name = action + "ResultEntry"
		}
		switch val := m[k].(type) {
		case []any:
			for _, it := range val {
				sqsXMLValue(b, action, name, it)
			}
		case map[string]any:
			if name == k {
				sqsXMLValue(b, action, name, val)
				continue
			}
			// A JSON map becomes flattened Name/Value (Key/Value for tags) entries.
			kn := "Name"
			if name == "Tag" {
				kn = "Key"
			}
			names := make([]string, 0, len(val))
			for n := range val {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(b, "<%s><%s>", name, kn)
				_ = xml.EscapeText(b, []byte(n))
				fmt.Fprintf(b, "</%s>", kn)
				sqsXMLValue(b, action, "Value", val[n])
				fmt.Fprintf(b, "</%s>", name)
			}
		default:
			sqsXMLValue(b, action, name, val)
		}
	}
}

func sqsXMLValue(b *bytes.Buffer, action, name string, v any) {
	fmt.Fprintf(b, "<%s>", name)
	switch val := v.(type) {
	case map[string]any:
		sqsXMLFields(b, action, val)
	case string:
		_ = xml.EscapeText(b, []byte(val))
	case nil:
	default:
		_ = xml.EscapeText(b, []byte(fmt.Sprint(val)))
	}
	fmt.Fprintf(b, "</%s>", name)
}

// sqsWrite writes an SQS result in the call's protocol.
func sqsWrite(c *awsproto.Call, out any) {
	if c.Protocol == awsproto.ProtoJSON {
		c.WriteJSON(out)
		return
	}
	sqsWriteQuery(c, out)
}

// sqsFail writes an SQS error. The query protocol words a missing queue as the SQS query API
// always has ("… for this wsdl version."); the JSON protocol does not.
func sqsFail(c *awsproto.Call, err *awsproto.APIError) {
	if c.Protocol == awsproto.ProtoQuery && err.Code == sqsNonExistentQueue {
		e := *err
		e.Message = strings.TrimSuffix(e.Message, ".") + " for this wsdl version."
		err = &e
	}
	c.Fail(err)
}
