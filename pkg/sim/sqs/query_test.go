package sqs_test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// sqsQuery posts an SQS query-protocol request, signed with SigV4 for service sqs as the SDKs
// that speak this protocol do, and returns the HTTP status and body.
func sqsQuery(t *testing.T, env *simtest.Env, form url.Values) (int, []byte) {
	t.Helper()
	form.Set("Version", "2012-11-05")
	body := form.Encode()
	req, err := http.NewRequest(http.MethodPost, env.URL(), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	creds, err := env.Config.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "sqs", env.Region().Name(), time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func sqsQueryOK(t *testing.T, env *simtest.Env, out any, kv ...string) {
	t.Helper()
	form := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		form.Set(kv[i], kv[i+1])
	}
	status, body := sqsQuery(t, env, form)
	if status != http.StatusOK {
		t.Fatalf("%s: HTTP %d: %s", form.Get("Action"), status, body)
	}
	if !strings.Contains(string(body), "<"+form.Get("Action")+"Response") {
		t.Fatalf("%s: answer is not a %sResponse: %s", form.Get("Action"), form.Get("Action"), body)
	}
	if out != nil {
		if err := xml.Unmarshal(body, out); err != nil {
			t.Fatalf("%s: %v\n%s", form.Get("Action"), err, body)
		}
	}
}

func TestSQSQueryProtocol(t *testing.T) {
	env, client := startSQS(t)
	var created struct {
		QueueURL string `xml:"CreateQueueResult>QueueUrl"`
	}
	sqsQueryOK(t, env, &created, "Action", "CreateQueue", "QueueName", "work", "Attribute.1.Name", "VisibilityTimeout",
		"Attribute.1.Value", "5", "Tag.1.Key", "team", "Tag.1.Value", "ops")
	if !strings.HasSuffix(created.QueueURL, "/123456789012/work") {
		t.Fatalf("QueueUrl = %q", created.QueueURL)
	}
	var attrs struct {
		Attrs []struct{ Name, Value string } `xml:"GetQueueAttributesResult>Attribute"`
	}
	sqsQueryOK(t, env, &attrs, "Action", "GetQueueAttributes", "QueueUrl", created.QueueURL, "AttributeName.1", "All")
	got := map[string]string{}
	for _, a := range attrs.Attrs {
		got[a.Name] = a.Value
	}
	if got["VisibilityTimeout"] != "5" || got["QueueArn"] != "arn:aws:sqs:us-east-1:123456789012:work" {
		t.Errorf("GetQueueAttributes = %v", got)
	}
	var sent struct {
		MessageID string `xml:"SendMessageResult>MessageId"`
		MD5       string `xml:"SendMessageResult>MD5OfMessageBody"`
	}
	sqsQueryOK(t, env, &sent, "Action", "SendMessage", "QueueUrl", created.QueueURL, "MessageBody", "hello <world>",
		"MessageAttribute.1.Name", "kind", "MessageAttribute.1.Value.StringValue", "greeting", "MessageAttribute.1.Value.DataType", "String")
	if sum := md5.Sum([]byte("hello <world>")); sent.MD5 != hex.EncodeToString(sum[:]) || sent.MessageID == "" {
		t.Errorf("SendMessage = %+v", sent)
	}
	for _, body := range []string{"one", "two"} {
		sqsQueryOK(t, env, nil, "Action", "SendMessage", "QueueUrl", created.QueueURL, "MessageBody", body, "DelaySeconds", "0")
	}

	var recv struct {
		Messages []struct {
			MessageID     string `xml:"MessageId"`
			ReceiptHandle string
			Body          string
			Attrs         []struct{ Name, Value string } `xml:"Attribute"`
			MsgAttrs      []struct {
				Name  string
				Value struct{ StringValue, DataType string }
			} `xml:"MessageAttribute"`
		} `xml:"ReceiveMessageResult>Message"`
	}
	sqsQueryOK(t, env, &recv, "Action", "ReceiveMessage", "QueueUrl", created.QueueURL, "MaxNumberOfMessages", "10",
		"AttributeName.1", "All", "MessageAttributeName.1", "All")
	if len(recv.Messages) != 3 {
		t.Fatalf("ReceiveMessage returned %d messages, want 3", len(recv.Messages))
	}
	m := recv.Messages[0]
	if m.MessageID != sent.MessageID || m.Body != "hello <world>" || len(m.MsgAttrs) != 1 || m.MsgAttrs[0].Name != "kind" ||
		m.MsgAttrs[0].Value.StringValue != "greeting" || m.MsgAttrs[0].Value.DataType != "String" {
		t.Errorf("first message = %+v", m)
	}
	sender := ""
	for _, a := range m.Attrs {
		if a.Name == "SenderId" {
			sender = a.Value
		}
	}
	if sender != "AKIDSIMTEST" {
		t.Errorf("SenderId = %q, want the signing access key", sender)
	}
	sqsQueryOK(t, env, nil, "Action", "DeleteMessage", "QueueUrl", created.QueueURL, "ReceiptHandle", m.ReceiptHandle)
	var del struct {
		OK []struct {
			ID string `xml:"Id"`
		} `xml:"DeleteMessageBatchResult>DeleteMessageBatchResultEntry"`
		Failed []struct {
			ID          string `xml:"Id"`
			Code        string
			SenderFault bool
		} `xml:"DeleteMessageBatchResult>BatchResultErrorEntry"`
	}
	sqsQueryOK(t, env, &del, "Action", "DeleteMessageBatch", "QueueUrl", created.QueueURL,
		"DeleteMessageBatchRequestEntry.1.Id", "x", "DeleteMessageBatchRequestEntry.1.ReceiptHandle", recv.Messages[1].ReceiptHandle,
		"DeleteMessageBatchRequestEntry.2.Id", "y", "DeleteMessageBatchRequestEntry.2.ReceiptHandle", "garbage")
	if len(del.OK) != 1 || del.OK[0].ID != "x" || len(del.Failed) != 1 || del.Failed[0].ID != "y" || !del.Failed[0].SenderFault {
		t.Errorf("DeleteMessageBatch = %+v", del)
	}

	// Both protocols see one queue: the JSON client finds what is left after the visibility timeout.
	env.Region().Advance(6 * time.Second)
	out, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(created.QueueURL), MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != "two" {
		t.Errorf("JSON ReceiveMessage after the query calls = %+v", out.Messages)
	}

	// Errors come in the query protocol's ErrorResponse with the legacy code.
	status, body := sqsQuery(t, env, url.Values{"Action": {"GetQueueUrl"}, "QueueName": {"missing"}})
	var e struct {
		Type    string `xml:"Error>Type"`
		Code    string `xml:"Error>Code"`
		Message string `xml:"Error>Message"`
	}
	if err := xml.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	if status != http.StatusBadRequest || e.Type != "Sender" || e.Code != "AWS.SimpleQueueService.NonExistentQueue" ||
		e.Message != "The specified queue does not exist for this wsdl version." ||
		!strings.HasPrefix(string(body), "<?xml") || !strings.Contains(string(body), "<ErrorResponse") {
		t.Errorf("GetQueueUrl of a missing queue: HTTP %d %s", status, body)
	}
	status, body = sqsQuery(t, env, url.Values{"Action": {"ReceiveMessage"}, "QueueUrl": {created.QueueURL}, "MaxNumberOfMessages": {"ten"}})
	if status != http.StatusBadRequest || !strings.Contains(string(body), "MaxNumberOfMessages") {
		t.Errorf("ReceiveMessage with MaxNumberOfMessages=ten: HTTP %d %s", status, body)
	}
}
