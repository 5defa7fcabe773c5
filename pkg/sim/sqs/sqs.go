package sqs

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spotmax/spotmax/pkg/sim/awsproto"
)

// Region is what SQS needs of the simulated region: its lock (which guards the queues as well, so
// that EventBridge and Auto Scaling deliver in the step that caused the message), the due state
// changes every call runs first, simulated time and timers, the seeded random source, and the
// names in queue URLs and ARNs.
type Region interface {
	sync.Locker
	RunDue()
	Now() time.Time
	After(d time.Duration, fn func())
	Rand(b []byte)
	Name() string
	AccountID() string
}

// Service is the SQS of one simulated region.
type Service struct {
	region Region
	queues map[string]*sqsQueue // by name
}

// New returns the SQS of region, without queues.
func New(region Region) *Service {
	return &Service{region: region, queues: map[string]*sqsQueue{}}
}

// Spec is how the region's mux reaches the service: signing name sqs, AWS JSON 1.0 and the
// query protocol.
func (svc *Service) Spec() *awsproto.Service {
	return &awsproto.Service{
		Name:          "sqs",
		XMLNS:         "http://queue.amazonaws.com/doc/2012-11-05/",
		QueryVersions: []string{queryVersion},
		JSONTargets:   []string{"AmazonSQS"},
		JSONNamespace: "com.amazonaws.sqs#",
		// SQS's JSON errors name the error structure in __type and keep the legacy query code in
		// x-amzn-query-error, which the SDKs report as the error code.
		ErrorShapes: map[string]string{
			sqsNonExistentQueue:                                   "QueueDoesNotExist",
			"QueueAlreadyExists":                                  "QueueNameExists",
			"AWS.SimpleQueueService.EmptyBatchRequest":            "EmptyBatchRequest",
			"AWS.SimpleQueueService.TooManyEntriesInBatchRequest": "TooManyEntriesInBatchRequest",
			"AWS.SimpleQueueService.BatchEntryIdsNotDistinct":     "BatchEntryIdsNotDistinct",
			"AWS.SimpleQueueService.InvalidBatchEntryId":          "InvalidBatchEntryId",
			"AWS.SimpleQueueService.UnsupportedOperation":         "UnsupportedOperation",
		},
		Handle: svc.serve,
	}
}

// do runs fn with the region locked after its due state changes.
func (svc *Service) do(fn func()) {
	svc.region.Lock()
	defer svc.region.Unlock()
	svc.region.RunDue()
	fn()
}

const (
	sqsNonExistentQueue  = "AWS.SimpleQueueService.NonExistentQueue"
	sqsMaxWait           = 20 * time.Second
	sqsMaxVisibility     = 43200
	sqsMaxBatch          = 10
	sqsMaxAttributes     = 10
	sqsMaxMessageSizeMax = 1048576
)

// sqsDefaults are the attributes of a queue created without any.
var sqsDefaults = map[string]string{
	"DelaySeconds":                  "0",
	"MaximumMessageSize":            strconv.Itoa(sqsMaxMessageSizeMax),
	"MessageRetentionPeriod":        "345600",
	"ReceiveMessageWaitTimeSeconds": "0",
	"VisibilityTimeout":             "30",
	"SqsManagedSseEnabled":          "true",
}

// sqsIntAttrs are the numeric attributes with their valid ranges.
var sqsIntAttrs = map[string][2]int64{
	"DelaySeconds":                  {0, 900},
	"MaximumMessageSize":            {1024, sqsMaxMessageSizeMax},
	"MessageRetentionPeriod":        {60, 1209600},
	"ReceiveMessageWaitTimeSeconds": {0, 20},
	"VisibilityTimeout":             {0, sqsMaxVisibility},
	"KmsDataKeyReusePeriodSeconds":  {60, 86400},
}

// sqsOtherAttrs can be set and are stored as given (after checks in sqsCheckAttrs).
var sqsOtherAttrs = map[string]bool{
	"Policy": true, "RedrivePolicy": true, "RedriveAllowPolicy": true, "KmsMasterKeyId": true,
	"SqsManagedSseEnabled": true,
}

type sqsQueue struct {
	name     string
	attrs    map[string]string
	tags     map[string]string
	created  time.Time
	modified time.Time
	msgs     []*sqsMessage // in send order
	// notify is closed, and replaced, when a message may have become receivable; long polls wait
	// on it without holding the region's lock.
	notify chan struct{}
}

type sqsMessage struct {
	id           string
	body         string
	attrs        map[string]sqsAttrValue
	md5Body      string
	md5Attrs     string
	sender       string
	sent         time.Time
	visibleAt    time.Time // after a delay or a visibility timeout
	receives     int
	firstReceive time.Time
	handle       string // the latest receipt handle
}

// sqsAttrValue is a message attribute, as the JSON protocol carries it.
type sqsAttrValue struct {
	DataType         string   `json:"DataType"`
	StringValue      *string  `json:"StringValue,omitempty"`
	BinaryValue      []byte   `json:"BinaryValue,omitempty"`
	StringListValues []string `json:"StringListValues,omitempty"`
	BinaryListValues [][]byte `json:"BinaryListValues,omitempty"`
}

func (q *sqsQueue) signal() {
	close(q.notify)
	q.notify = make(chan struct{})
}

func (q *sqsQueue) intAttr(name string) int64 {
	n, _ := strconv.ParseInt(q.attrs[name], 10, 64)
	return n
}

func (svc *Service) sqsARN(name string) string {
	return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", svc.region.Name(), svc.region.AccountID(), name)
}

func sqsQueueMissing() *awsproto.APIError {
	return awsproto.Errorf(sqsNonExistentQueue, "The specified queue does not exist.")
}

// expire drops messages older than the retention period.
func (q *sqsQueue) expire(now time.Time) {
	keep := now.Add(-time.Duration(q.intAttr("MessageRetentionPeriod")) * time.Second)
	out := q.msgs[:0]
	for _, m := range q.msgs {
		if m.sent.After(keep) {
			out = append(out, m)
		}
	}
	clear(q.msgs[len(out):])
	q.msgs = out
}

// Message is a message in a simulated SQS queue.
type Message struct {
	ID           string
	Body         string
	Attributes   map[string]string // message attributes with a string value
	SentTime     time.Time
	ReceiveCount int
	// Visible reports whether a ReceiveMessage would return it now (not delayed, not in flight).
	Visible bool
}

// Messages returns copies of the messages in a queue, in send order; nil if there is no such
// queue.
func (svc *Service) Messages(queueName string) []Message {
	svc.region.Lock()
	defer svc.region.Unlock()
	q := svc.queues[queueName]
	if q == nil {
		return nil
	}
	now := svc.region.Now()
	q.expire(now)
	out := make([]Message, 0, len(q.msgs))
	for _, m := range q.msgs {
		qm := Message{ID: m.id, Body: m.body, SentTime: m.sent, ReceiveCount: m.receives,
			Visible: !m.visibleAt.After(now), Attributes: map[string]string{}}
		for k, v := range m.attrs {
			if v.StringValue != nil {
				qm.Attributes[k] = *v.StringValue
			}
		}
		out = append(out, qm)
	}
	return out
}

// Send sends a message to a queue, as SendMessage does, after the region's due state changes.
func (svc *Service) Send(queueName, body string) error {
	svc.region.Lock()
	defer svc.region.Unlock()
	svc.region.RunDue()
	_, err := svc.Deliver(queueName, body)
	return err
}

// Deliver sends a message to a queue given by name or ARN, with the region's lock held, and
// returns its id. It is what region features that deliver to queues call (EventBridge rules,
// lifecycle hook notifications).
func (svc *Service) Deliver(queue, body string) (string, error) {
	name := queue
	if strings.HasPrefix(queue, "arn:") {
		parts := strings.Split(queue, ":")
		if len(parts) != 6 || parts[2] != "sqs" || parts[4] != svc.region.AccountID() {
			return "", fmt.Errorf("sending to %s: %w", queue, sqsQueueMissing())
		}
		name = parts[5]
	}
	q := svc.queues[name]
	if q == nil {
		return "", fmt.Errorf("sending to queue %s: %w", queue, sqsQueueMissing())
	}
	if err := sqsCheckBody(body, q.intAttr("MaximumMessageSize"), 0); err != nil {
		return "", fmt.Errorf("sending to queue %s: %w", queue, err)
	}
	m := svc.sqsSend(q, body, nil, q.intAttr("DelaySeconds"), svc.region.AccountID())
	return m.id, nil
}

// sqsSend appends a message to a queue and wakes long polls; the message is valid.
func (svc *Service) sqsSend(q *sqsQueue, body string, attrs map[string]sqsAttrValue, delay int64, sender string) *sqsMessage {
	now := svc.region.Now()
	sum := md5.Sum([]byte(body))
	m := &sqsMessage{id: svc.sqsUUID(), body: body, attrs: attrs, md5Body: hex.EncodeToString(sum[:]),
		md5Attrs: sqsAttrsMD5(attrs), sender: sender, sent: now, visibleAt: now.Add(time.Duration(delay) * time.Second)}
	q.msgs = append(q.msgs, m)
	if delay > 0 {
		svc.region.After(time.Duration(delay)*time.Second, q.signal)
	} else {
		q.signal()
	}
	return m
}

func (svc *Service) sqsUUID() string {
	b := make([]byte, 16)
	svc.region.Rand(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// sqsAttrsMD5 is the MD5 of message attributes as SQS computes it: for each attribute in name
// order, the length-prefixed name, data type, a transport byte and the length-prefixed value.
func sqsAttrsMD5(attrs map[string]sqsAttrValue) string {
	if len(attrs) == 0 {
		return ""
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	put := func(p []byte) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(p)))
		b.Write(p)
	}
	for _, n := range names {
		v := attrs[n]
		put([]byte(n))
		put([]byte(v.DataType))
		if v.StringValue != nil {
			b.WriteByte(1)
			put([]byte(*v.StringValue))
		} else {
			b.WriteByte(2)
			put(v.BinaryValue)
		}
	}
	sum := md5.Sum(b.Bytes())
	return hex.EncodeToString(sum[:])
}

// sqsCheckBody applies SQS's rules on message bodies: not empty, within the queue's maximum size
// (together with the attributes), only XML-safe characters.
func sqsCheckBody(body string, maxSize, attrSize int64) *awsproto.APIError {
	if body == "" {
		return awsproto.Errorf(awsproto.CodeMissingParameter, "The request must contain the parameter MessageBody.")
	}
	if int64(len(body))+attrSize > maxSize {
		return awsproto.Errorf(awsproto.CodeInvalidParameter, "One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", maxSize)
	}
	for i, c := range body {
		if c == utf8.RuneError && !strings.HasPrefix(body[i:], "\uFFFD") {
			return awsproto.Errorf("InvalidMessageContents", "Invalid binary character was found in the message body: the body is not UTF-8.")
		}
		if !(c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) || (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF)) {
			return awsproto.Errorf("InvalidMessageContents", "Invalid binary character '#x%X' was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF", c)
		}
	}
	return nil
}

var sqsAttrName = awsproto.LazyRegexp(`^[A-Za-z0-9_.-]{1,256}$`)

// sqsCheckMessageAttrs validates message attributes and returns their size in bytes.
func sqsCheckMessageAttrs(attrs map[string]sqsAttrValue) (int64, *awsproto.APIError) {
	if len(attrs) > sqsMaxAttributes {
		return 0, awsproto.Errorf(awsproto.CodeInvalidParameter, "Number of message attributes [%d] exceeds the allowed maximum [%d].", len(attrs), sqsMaxAttributes)
	}
	var size int64
	for name, v := range attrs {
		lower := strings.ToLower(name)
		if !sqsAttrName().MatchString(name) || strings.HasPrefix(lower, "aws.") || strings.HasPrefix(lower, "amazon.") ||
			strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
			return 0, awsproto.Errorf(awsproto.CodeInvalidParameter, "Message attribute name '%s' is invalid.", name)
		}
		base, _, _ := strings.Cut(v.DataType, ".")
		switch {
		case v.DataType == "":
			return 0, awsproto.Errorf(awsproto.CodeInvalidParameter, "The message attribute '%s' must contain a non-empty message attribute type.", name)
		case base != "String" && base != "Number" && base != "Binary":
			return 0, awsproto.Errorf(awsproto.CodeInvalidParameter, "The type of message (user) attribute '%s' is invalid. You must use only the following supported type prefixes: Binary, Number, String.", name)
		case len(v.StringListValues) > 0 || len(v.BinaryListValues) > 0:
			return 0, awsproto.Errorf(awsproto.CodeInvalidParameter, "Message attribute list values in SendMessage operation are not supported.")
		case base == "Binary" && v.BinaryValue == nil:
			return 0, awsproto.Errorf(awsproto.CodeInvalidParameter, "The message attribute '%s' with type 'Binary' must use field 'Binary'.", name)
		case base != "Binary" && (v.StringValue == nil || *v.StringValue == ""):
			return 0, awsproto.Errorf(awsproto.CodeInvalidParameter, "The message attribute '%s' must contain a non-empty message attribute value for message attribute type '%s'.", name, v.DataType)
		case base == "Number":
			if _, err := strconv.ParseFloat(*v.StringValue, 64); err != nil {
				return 0, awsproto.Errorf(awsproto.CodeInvalidParameter, "Can't cast the value of message (user) attribute '%s' to a number.", name)
			}
		}
		size += int64(len(name) + len(v.DataType) + len(v.BinaryValue))
		if v.StringValue != nil {
			size += int64(len(*v.StringValue))
		}
	}
	return size, nil
}

// sqsCheckAttrs validates queue attributes given to CreateQueue or SetQueueAttributes.
func (svc *Service) sqsCheckAttrs(name string, attrs map[string]string) *awsproto.APIError {
	for k, v := range attrs {
		if rng, ok := sqsIntAttrs[k]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < rng[0] || n > rng[1] {
				return awsproto.Errorf("InvalidAttributeValue", "Invalid value for the parameter %s.", k)
			}
			continue
		}
		switch k {
		case "FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit":
			if k == "FifoQueue" && v == "false" {
				continue
			}
			return awsproto.Errorf("AWS.SimpleQueueService.UnsupportedOperation", "The simulated region does not simulate FIFO queues (attribute %s).", k)
		case "Policy", "RedriveAllowPolicy":
			if !json.Valid([]byte(v)) {
				return awsproto.Errorf("InvalidAttributeValue", "Invalid value for the parameter %s.", k)
			}
		case "RedrivePolicy":
			if v == "" {
				continue
			}
			var p struct {
				Target string          `json:"deadLetterTargetArn"`
				Max    json.RawMessage `json:"maxReceiveCount"`
			}
			if err := json.Unmarshal([]byte(v), &p); err != nil {
				return awsproto.Errorf("InvalidAttributeValue", "Invalid value for the parameter RedrivePolicy. Reason: Redrive policy is not a valid JSON map.")
			}
			n, err := strconv.Atoi(strings.Trim(string(p.Max), `"`))
			if err != nil || n < 1 || n > 1000 {
				return awsproto.Errorf("InvalidAttributeValue", "Value %s for parameter RedrivePolicy is invalid. Reason: Invalid value for maxReceiveCount: %s, valid values are from 1 to 1000 both inclusive.", v, p.Max)
			}
			if p.Target == svc.sqsARN(name) {
				return awsproto.Errorf("InvalidAttributeValue", "Value %s for parameter RedrivePolicy is invalid. Reason: Dead-letter target ARN cannot be the queue itself.", v)
			}
		case "SqsManagedSseEnabled":
			if v != "true" && v != "false" {
				return awsproto.Errorf("InvalidAttributeValue", "Invalid value for the parameter %s.", k)
			}
		case "KmsMasterKeyId":
		default:
			return awsproto.Errorf("InvalidAttributeName", "Unknown Attribute %s.", k)
		}
	}
	return nil
}

// redrive returns the dead-letter queue and maximum receive count of a queue's RedrivePolicy.
func (svc *Service) redrive(q *sqsQueue) (*sqsQueue, int) {
	v := q.attrs["RedrivePolicy"]
	if v == "" {
		return nil, 0
	}
	var p struct {
		Target string          `json:"deadLetterTargetArn"`
		Max    json.RawMessage `json:"maxReceiveCount"`
	}
	if json.Unmarshal([]byte(v), &p) != nil {
		return nil, 0
	}
	n, _ := strconv.Atoi(strings.Trim(string(p.Max), `"`))
	prefix := svc.sqsARN("")
	if !strings.HasPrefix(p.Target, prefix) {
		return nil, 0
	}
	return svc.queues[strings.TrimPrefix(p.Target, prefix)], n
}

var sqsActions = awsproto.JSONActions[*Service]{
	"CreateQueue":        (*Service).sqsCreateQueue,
	"GetQueueUrl":        (*Service).sqsGetQueueURL,
	"GetQueueAttributes": (*Service).sqsGetQueueAttributes,
	"SetQueueAttributes": (*Service).sqsSetQueueAttributes,
	"SendMessage":        (*Service).sqsSendMessage,
	"DeleteMessage":      (*Service).sqsDeleteMessage,
	"DeleteMessageBatch": (*Service).sqsDeleteMessageBatch,
}

func (svc *Service) serve(c *awsproto.Call) {
	switch c.Protocol {
	case awsproto.ProtoJSON:
	case awsproto.ProtoQuery:
		// The query protocol's form becomes the JSON request (query.go).
		body, err := sqsQueryToJSON(c.Action, c.Form)
		if err != nil {
			c.Fail(err)
			return
		}
		c.Body = body
	default:
		c.Fail(&awsproto.APIError{Status: http.StatusBadRequest, Code: awsproto.CodeInvalidAction,
			Message: "The simulated region serves SQS over the AWS JSON and query protocols only."})
		return
	}
	if c.Action == "ReceiveMessage" {
		svc.sqsReceiveMessage(c)
		return
	}
	out, err := sqsActions.Run(svc, c, svc.do)
	if err != nil {
		sqsFail(c, err)
		return
	}
	sqsWrite(c, out)
}

func sqsDecode(c *awsproto.Call, v any) *awsproto.APIError {
	return c.DecodeJSON(v, "SerializationException")
}

// queueByURL finds the queue a QueueUrl names: http://host/account/name. Only the path counts,
// so URLs with AWS's host name work too.
func (svc *Service) queueByURL(u string) (*sqsQueue, *awsproto.APIError) {
	if u == "" {
		return nil, awsproto.Errorf(awsproto.CodeMissingParameter, "The request must contain the parameter QueueUrl.")
	}
	path := u
	if i := strings.Index(u, "://"); i >= 0 {
		path = u[i+3:]
		if j := strings.IndexByte(path, '/'); j >= 0 {
			path = path[j:]
		} else {
			path = ""
		}
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) != 2 || parts[0] != svc.region.AccountID() {
		return nil, sqsQueueMissing()
	}
	q := svc.queues[parts[1]]
	if q == nil {
		return nil, sqsQueueMissing()
	}
	q.expire(svc.region.Now())
	return q, nil
}

func (svc *Service) queueURL(c *awsproto.Call, name string) string {
	host := c.Request().Host
	if host == "" {
		host = "localhost"
	}
	return fmt.Sprintf("http://%s/%s/%s", host, svc.region.AccountID(), name)
}

var sqsQueueName = awsproto.LazyRegexp(`^[A-Za-z0-9_-]{1,80}$`)

func (svc *Service) sqsCreateQueue(c *awsproto.Call) (any, *awsproto.APIError) {
	var in struct {
		QueueName  string
		Attributes map[string]string
		Tags       map[string]string `json:"tags"`
	}
	if err := sqsDecode(c, &in); err != nil {
		return nil, err
	}
	if in.QueueName == "" {
		return nil, awsproto.Errorf(awsproto.CodeMissingParameter, "The request must contain the parameter QueueName.")
	}
	if strings.HasSuffix(in.QueueName, ".fifo") {
		return nil, awsproto.Errorf("AWS.SimpleQueueService.UnsupportedOperation", "The simulated region does not simulate FIFO queues.")
	}
	if !sqsQueueName().MatchString(in.QueueName) {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
	}
	if err := svc.sqsCheckAttrs(in.QueueName, in.Attributes); err != nil {
		return nil, err
	}
	st := svc
	now := svc.region.Now()
	if q := st.queues[in.QueueName]; q != nil {
		for k, v := range in.Attributes {
			cur, ok := q.attrs[k]
			if !ok {
				cur = sqsDefaults[k]
			}
			if cur != v {
				return nil, awsproto.Errorf("QueueAlreadyExists", "A queue already exists with the same name and a different value for attribute %s", k)
			}
		}
		return map[string]string{"QueueUrl": svc.queueURL(c, q.name)}, nil
	}
	q := &sqsQueue{name: in.QueueName, attrs: map[string]string{}, tags: map[string]string{}, created: now, modified: now,
		notify: make(chan struct{})}
	for k, v := range sqsDefaults {
		q.attrs[k] = v
	}
	for k, v := range in.Attributes {
		q.attrs[k] = v
	}
	if len(in.Tags) > 50 {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "Too many tags: a queue can have up to 50 tags.")
	}
	for k, v := range in.Tags {
		q.tags[k] = v
	}
	st.queues[q.name] = q
	return map[string]string{"QueueUrl": svc.queueURL(c, q.name)}, nil
}

func (svc *Service) sqsGetQueueURL(c *awsproto.Call) (any, *awsproto.APIError) {
	var in struct{ QueueName, QueueOwnerAWSAccountId string }
	if err := sqsDecode(c, &in); err != nil {
		return nil, err
	}
	if in.QueueName == "" {
		return nil, awsproto.Errorf(awsproto.CodeMissingParameter, "The request must contain the parameter QueueName.")
	}
	q := svc.queues[in.QueueName]
	if q == nil || (in.QueueOwnerAWSAccountId != "" && in.QueueOwnerAWSAccountId != svc.region.AccountID()) {
		return nil, sqsQueueMissing()
	}
	return map[string]string{"QueueUrl": svc.queueURL(c, q.name)}, nil
}

func (svc *Service) sqsGetQueueAttributes(c *awsproto.Call) (any, *awsproto.APIError) {
	var in struct {
		QueueUrl       string
		AttributeNames []string
	}
	if err := sqsDecode(c, &in); err != nil {
		return nil, err
	}
	q, err := svc.queueByURL(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	all := map[string]string{}
	for k, v := range q.attrs {
		all[k] = v
	}
	now := svc.region.Now()
	var visible, inflight, delayed int
	for _, m := range q.msgs {
		switch {
		case !m.visibleAt.After(now):
			visible++
		case m.receives > 0:
			inflight++
		default:
			delayed++
		}
	}
	all["QueueArn"] = svc.sqsARN(q.name)
	all["ApproximateNumberOfMessages"] = strconv.Itoa(visible)
	all["ApproximateNumberOfMessagesNotVisible"] = strconv.Itoa(inflight)
	all["ApproximateNumberOfMessagesDelayed"] = strconv.Itoa(delayed)
	all["CreatedTimestamp"] = strconv.FormatInt(q.created.Unix(), 10)
	all["LastModifiedTimestamp"] = strconv.FormatInt(q.modified.Unix(), 10)
	out := map[string]string{}
	for _, n := range in.AttributeNames {
		if n == "All" {
			out = all
			break
		}
		v, ok := all[n]
		if !ok {
			if _, known := sqsIntAttrs[n]; !known && !sqsOtherAttrs[n] && n != "FifoQueue" && n != "ContentBasedDeduplication" {
				return nil, awsproto.Errorf("InvalidAttributeName", "Unknown Attribute %s.", n)
			}
			continue
		}
		out[n] = v
	}
	if len(out) == 0 {
		return struct{}{}, nil
	}
	return map[string]any{"Attributes": out}, nil
}

func (svc *Service) sqsSetQueueAttributes(c *awsproto.Call) (any, *awsproto.APIError) {
	var in struct {
		QueueUrl   string
		Attributes map[string]string
	}
	if err := sqsDecode(c, &in); err != nil {
		return nil, err
	}
	q, err := svc.queueByURL(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	if len(in.Attributes) == 0 {
		return nil, awsproto.Errorf(awsproto.CodeMissingParameter, "The request must contain the parameter Attributes.")
	}
	if err := svc.sqsCheckAttrs(q.name, in.Attributes); err != nil {
		return nil, err
	}
	for k, v := range in.Attributes {
		if v == "" && (k == "Policy" || k == "RedrivePolicy" || k == "RedriveAllowPolicy") {
			delete(q.attrs, k)
			continue
		}
		q.attrs[k] = v
	}
	q.modified = svc.region.Now()
	return nil, nil
}

// sqsSendInput is SendMessage's request.
type sqsSendInput struct {
	Id                      string
	MessageBody             string
	DelaySeconds            *int64
	MessageAttributes       map[string]sqsAttrValue
	MessageSystemAttributes map[string]sqsAttrValue
	MessageGroupId          string
	MessageDeduplicationId  string
}

// sqsSendOutput is SendMessage's result.
type sqsSendOutput struct {
	Id                     string `json:",omitempty"`
	MessageId              string
	MD5OfMessageBody       string
	MD5OfMessageAttributes string `json:",omitempty"`
}

func (svc *Service) sqsSendOne(c *awsproto.Call, q *sqsQueue, in sqsSendInput) (*sqsSendOutput, *awsproto.APIError) {
	delay := q.intAttr("DelaySeconds")
	if in.DelaySeconds != nil {
		if *in.DelaySeconds < 0 || *in.DelaySeconds > 900 {
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "Value %d for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900.", *in.DelaySeconds)
		}
		delay = *in.DelaySeconds
	}
	size, err := sqsCheckMessageAttrs(in.MessageAttributes)
	if err != nil {
		return nil, err
	}
	if err := sqsCheckBody(in.MessageBody, q.intAttr("MaximumMessageSize"), size); err != nil {
		return nil, err
	}
	sender := c.AccessKey
	if sender == "" {
		sender = svc.region.AccountID()
	}
	m := svc.sqsSend(q, in.MessageBody, in.MessageAttributes, delay, sender)
	return &sqsSendOutput{Id: in.Id, MessageId: m.id, MD5OfMessageBody: m.md5Body, MD5OfMessageAttributes: m.md5Attrs}, nil
}

func (svc *Service) sqsSendMessage(c *awsproto.Call) (any, *awsproto.APIError) {
	var in struct {
		QueueUrl string
		sqsSendInput
	}
	if err := sqsDecode(c, &in); err != nil {
		return nil, err
	}
	q, err := svc.queueByURL(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	in.Id = ""
	return svc.sqsSendOne(c, q, in.sqsSendInput)
}

// sqsBatchError is a failed entry of a batch action.
type sqsBatchError struct {
	Id          string
	SenderFault bool
	Code        string
	Message     string
}

var sqsBatchID = awsproto.LazyRegexp(`^[A-Za-z0-9_-]{1,80}$`)

// sqsCheckBatch applies the rules every batch action shares to the entries' ids.
func sqsCheckBatch(ids []string) *awsproto.APIError {
	if len(ids) == 0 {
		return awsproto.Errorf("AWS.SimpleQueueService.EmptyBatchRequest", "There should be at least one DeleteMessageBatchRequestEntry in the request.")
	}
	if len(ids) > sqsMaxBatch {
		return awsproto.Errorf("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "Maximum number of entries per request are %d. You have sent %d.", sqsMaxBatch, len(ids))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if !sqsBatchID().MatchString(id) {
			return awsproto.Errorf("AWS.SimpleQueueService.InvalidBatchEntryId", "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.")
		}
		if seen[id] {
			return awsproto.Errorf("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "Id %s repeated.", id)
		}
		seen[id] = true
	}
	return nil
}

// receiptHandle encodes the queue, the message and the receive it came from.
func (svc *Service) receiptHandle(q *sqsQueue, m *sqsMessage) string {
	nonce := make([]byte, 12)
	svc.region.Rand(nonce)
	raw := fmt.Sprintf("%s\x00%s\x00%d\x00%s", q.name, m.id, m.receives, base64.RawStdEncoding.EncodeToString(nonce))
	return base64.StdEncoding.EncodeToString([]byte(raw))
}

// parseReceipt returns the message id a receipt handle of queue q names. Any handle the queue
// ever gave out is valid, also after the message was received again or deleted, as on AWS.
func parseReceipt(q *sqsQueue, handle string) (string, *awsproto.APIError) {
	invalid := awsproto.Errorf("ReceiptHandleIsInvalid", "The input receipt handle \"%s\" is not a valid receipt handle.", handle)
	if handle == "" {
		return "", awsproto.Errorf(awsproto.CodeMissingParameter, "The request must contain the parameter ReceiptHandle.")
	}
	raw, err := base64.StdEncoding.DecodeString(handle)
	if err != nil {
		return "", invalid
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 4 || parts[0] != q.name {
		return "", invalid
	}
	return parts[1], nil
}

func (q *sqsQueue) find(id string) (int, *sqsMessage) {
	for i, m := range q.msgs {
		if m.id == id {
			return i, m
		}
	}
	return -1, nil
}

func (svc *Service) sqsDeleteOne(q *sqsQueue, handle string) *awsproto.APIError {
	id, err := parseReceipt(q, handle)
	if err != nil {
		return err
	}
	if i, _ := q.find(id); i >= 0 {
		q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
	}
	return nil
}

func (svc *Service) sqsDeleteMessage(c *awsproto.Call) (any, *awsproto.APIError) {
	var in struct{ QueueUrl, ReceiptHandle string }
	if err := sqsDecode(c, &in); err != nil {
		return nil, err
	}
	q, err := svc.queueByURL(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	return nil, svc.sqsDeleteOne(q, in.ReceiptHandle)
}

type sqsBatchEntry struct {
	Id                string
	ReceiptHandle     string
	VisibilityTimeout int64
}

type sqsBatchResult struct {
	Successful []map[string]string
	Failed     []sqsBatchError
}

func (svc *Service) sqsBatch(c *awsproto.Call, fn func(q *sqsQueue, e sqsBatchEntry) *awsproto.APIError) (any, *awsproto.APIError) {
	var in struct {
		QueueUrl string
		Entries  []sqsBatchEntry
	}
	if err := sqsDecode(c, &in); err != nil {
		return nil, err
	}
	q, err := svc.queueByURL(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i] = e.Id
	}
	if err := sqsCheckBatch(ids); err != nil {
		return nil, err
	}
	out := sqsBatchResult{Successful: []map[string]string{}, Failed: []sqsBatchError{}}
	for _, e := range in.Entries {
		if err := fn(q, e); err != nil {
			out.Failed = append(out.Failed, sqsBatchError{Id: e.Id, SenderFault: err.Sender(), Code: err.Code, Message: err.Message})
			continue
		}
		out.Successful = append(out.Successful, map[string]string{"Id": e.Id})
	}
	return out, nil
}

func (svc *Service) sqsDeleteMessageBatch(c *awsproto.Call) (any, *awsproto.APIError) {
	return svc.sqsBatch(c, func(q *sqsQueue, e sqsBatchEntry) *awsproto.APIError { return svc.sqsDeleteOne(q, e.ReceiptHandle) })
}

// sqsReceived is a message as ReceiveMessage returns it.
type sqsReceived struct {
	MessageId              string
	ReceiptHandle          string
	MD5OfBody              string
	Body                   string
	Attributes             map[string]string       `json:",omitempty"`
	MD5OfMessageAttributes string                  `json:",omitempty"`
	MessageAttributes      map[string]sqsAttrValue `json:",omitempty"`
}

type sqsReceiveInput struct {
	QueueUrl                    string
	AttributeNames              []string
	MessageSystemAttributeNames []string
	MessageAttributeNames       []string
	MaxNumberOfMessages         *int64
	VisibilityTimeout           *int64
	WaitTimeSeconds             *int64
	ReceiveRequestAttemptId     string
}

// sqsReceiveMessage serves ReceiveMessage. A long poll waits, without the region's lock, until a
// message can be received, the wait time passes in real time, or the request ends.
func (svc *Service) sqsReceiveMessage(c *awsproto.Call) {
	var in sqsReceiveInput
	if err := sqsDecode(c, &in); err != nil {
		c.Fail(err)
		return
	}
	limit := int64(1)
	if in.MaxNumberOfMessages != nil {
		limit = *in.MaxNumberOfMessages
		if limit < 1 || limit > sqsMaxBatch {
			c.Fail(awsproto.Errorf(awsproto.CodeInvalidParameter, "Value %d for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.", limit))
			return
		}
	}
	if v := in.VisibilityTimeout; v != nil && (*v < 0 || *v > sqsMaxVisibility) {
		c.Fail(awsproto.Errorf(awsproto.CodeInvalidParameter, "Value %d for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200, if provided.", *v))
		return
	}
	if w := in.WaitTimeSeconds; w != nil && (*w < 0 || *w > int64(sqsMaxWait/time.Second)) {
		c.Fail(awsproto.Errorf(awsproto.CodeInvalidParameter, "Value %d for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.", *w))
		return
	}
	svc.region.Lock()
	q, err := svc.queueByURL(in.QueueUrl)
	var wait int64
	if err == nil {
		wait = q.intAttr("ReceiveMessageWaitTimeSeconds")
	}
	svc.region.Unlock()
	if err != nil {
		sqsFail(c, err)
		return
	}
	if in.WaitTimeSeconds != nil {
		wait = *in.WaitTimeSeconds
	}
	deadline := time.Now().Add(time.Duration(wait) * time.Second)
	for {
		svc.region.Lock()
		svc.region.RunDue()
		msgs := svc.sqsTake(q, in, int(limit))
		notify := q.notify
		svc.region.Unlock()
		left := time.Until(deadline)
		if len(msgs) > 0 || left <= 0 {
			sqsWrite(c, struct {
				Messages []sqsReceived `json:",omitempty"`
			}{msgs})
			return
		}
		t := time.NewTimer(left)
		select {
		case <-notify:
		case <-t.C:
		case <-c.Request().Context().Done():
			t.Stop()
			sqsWrite(c, struct{}{})
			return
		}
		t.Stop()
	}
}

// sqsTake receives up to max visible messages, oldest first, with the lock held. Messages that
// were received maxReceiveCount times move to the dead-letter queue instead.
func (svc *Service) sqsTake(q *sqsQueue, in sqsReceiveInput, limit int) []sqsReceived {
	now := svc.region.Now()
	q.expire(now)
	vt := q.intAttr("VisibilityTimeout")
	if in.VisibilityTimeout != nil {
		vt = *in.VisibilityTimeout
	}
	dlq, maxReceives := svc.redrive(q)
	sysAttrs := append(append([]string(nil), in.AttributeNames...), in.MessageSystemAttributeNames...)
	var out []sqsReceived
	kept := q.msgs[:0]
	moved := false
	for _, m := range q.msgs {
		if len(out) >= limit || m.visibleAt.After(now) {
			kept = append(kept, m)
			continue
		}
		if dlq != nil && dlq != q && maxReceives > 0 && m.receives >= maxReceives {
			m.visibleAt = now
			dlq.msgs = append(dlq.msgs, m)
			moved = true
			continue
		}
		kept = append(kept, m)
		m.receives++
		if m.firstReceive.IsZero() {
			m.firstReceive = now
		}
		m.visibleAt = now.Add(time.Duration(vt) * time.Second)
		m.handle = svc.receiptHandle(q, m)
		out = append(out, sqsMessageOut(m, sysAttrs, in.MessageAttributeNames))
	}
	clear(q.msgs[len(kept):])
	q.msgs = kept
	if moved {
		dlq.signal()
	}
	if len(out) > 0 {
		if vt > 0 {
			svc.region.After(time.Duration(vt)*time.Second, q.signal)
		} else {
			q.signal()
		}
	}
	return out
}

func sqsMessageOut(m *sqsMessage, sysAttrs, msgAttrs []string) sqsReceived {
	out := sqsReceived{MessageId: m.id, ReceiptHandle: m.handle, MD5OfBody: m.md5Body, Body: m.body}
	system := map[string]string{
		"SenderId":                         m.sender,
		"SentTimestamp":                    strconv.FormatInt(m.sent.UnixMilli(), 10),
		"ApproximateReceiveCount":          strconv.Itoa(m.receives),
		"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.firstReceive.UnixMilli(), 10),
	}
	for _, n := range sysAttrs {
		if n == "All" {
			out.Attributes = system
			break
		}
		if v, ok := system[n]; ok {
			if out.Attributes == nil {
				out.Attributes = map[string]string{}
			}
			out.Attributes[n] = v
		}
	}
	for name, v := range m.attrs {
		for _, want := range msgAttrs {
			if want == "All" || want == ".*" || want == name ||
				(strings.HasSuffix(want, ".*") && strings.HasPrefix(name, strings.TrimSuffix(want, "*"))) {
				if out.MessageAttributes == nil {
					out.MessageAttributes = map[string]sqsAttrValue{}
				}
				out.MessageAttributes[name] = v
				break
			}
		}
	}
	// The digest covers the attributes returned.
	out.MD5OfMessageAttributes = sqsAttrsMD5(out.MessageAttributes)
	return out
}

// Access reports, with the region's lock held, whether the queue arn names exists in this region
// and account, and why its access policy refuses principal sending on behalf of sourceARN ("" when
// it allows it), as SQS decides for a service such as EventBridge.
func (svc *Service) Access(arn, principal, sourceARN string) (exists bool, refused string) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[2] != "sqs" || parts[3] != svc.region.Name() || parts[4] != svc.region.AccountID() {
		return false, ""
	}
	q := svc.queues[parts[5]]
	if q == nil {
		return false, ""
	}
	return true, PolicyAllows(q.attrs["Policy"], principal, svc.sqsARN(q.name), sourceARN, svc.region.AccountID())
}
