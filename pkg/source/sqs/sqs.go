package sqs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/source"
)

// Queue is what the source needs from SQS; *sqs.Client (aws-sdk-go-v2) satisfies it.
type Queue interface {
	ReceiveMessage(ctx context.Context, params *awssqs.ReceiveMessageInput, optFns ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, params *awssqs.DeleteMessageBatchInput, optFns ...func(*awssqs.Options)) (*awssqs.DeleteMessageBatchOutput, error)
}

// InstanceFilter maps instance ids to the spotmax group each belongs to; an instance it leaves
// out of the map is not managed by spotmax. It is called once per received batch.
type InstanceFilter func(ctx context.Context, instanceIDs []string) (map[string]string, error)

// SQS long-polling parameters: the longest wait and the largest batch SQS allows.
const (
	sqsWaitSeconds = 20
	sqsMaxMessages = 10
)

// Source consumes the EventBridge events that rules deliver to an SQS queue (see
// `spotmax setup events`) and emits them as source.Events. Delivery is at least once: a message is
// deleted only after out accepted its event, so a crash or shutdown in between lets the message
// come back, and the controller drops the duplicate by its ID. Messages that cannot be parsed,
// and messages about instances outside spotmax groups (EventBridge cannot filter by tag), are
// deleted and counted, never retried.
type Source struct {
	Client   Queue
	QueueURL string
	// Filter resolves the instances of a batch to their groups; nil treats every instance as
	// managed, with its group left for the controller to find. Auto Scaling launch failures name
	// their group and pass through unfiltered.
	Filter InstanceFilter
	Log    *slog.Logger
	// MinBackoff and MaxBackoff bound the wait after a failed receive, which doubles from the
	// first to the second; defaults 1 s and 30 s.
	MinBackoff, MaxBackoff time.Duration

	received, handedOver, unmanaged, malformed, unsupported atomic.Int64
	receiveErrors, filterErrors, deleteErrors               atomic.Int64
}

// Stats count what a Source did since it started.
type Stats struct {
	// Received counts messages received (a redelivered message counts again).
	Received int64 `json:"received"`
	// HandedOver counts events that out accepted.
	HandedOver int64 `json:"handed_over"`
	// Unmanaged counts messages about instances outside spotmax groups, deleted.
	Unmanaged int64 `json:"unmanaged"`
	// Malformed counts messages that are not valid events of the kinds spotmax consumes, deleted.
	Malformed int64 `json:"malformed"`
	// Unsupported counts well-formed events of other kinds (a widened rule), deleted.
	Unsupported int64 `json:"unsupported"`
	// ReceiveErrors, FilterErrors and DeleteErrors count failed calls; the messages concerned
	// come back after their visibility timeout.
	ReceiveErrors int64 `json:"receive_errors"`
	FilterErrors  int64 `json:"filter_errors"`
	DeleteErrors  int64 `json:"delete_errors"`
}

// Stats returns the source's counters; it is safe to call while Run runs.
func (s *Source) Stats() Stats {
	return Stats{
		Received: s.received.Load(), HandedOver: s.handedOver.Load(), Unmanaged: s.unmanaged.Load(),
		Malformed: s.malformed.Load(), Unsupported: s.unsupported.Load(), ReceiveErrors: s.receiveErrors.Load(),
		FilterErrors: s.filterErrors.Load(), DeleteErrors: s.deleteErrors.Load(),
	}
}

// Run long-polls the queue and sends the events on out until ctx ends; it then returns nil. It
// returns an error only when the queue does not exist. Failed receives are retried with
// exponential backoff.
func (s *Source) Run(ctx context.Context, out chan<- source.Event) error {
	if s.QueueURL == "" {
		return errors.New("SQS source: no queue URL")
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("queue", s.QueueURL)
	minB, maxB := s.MinBackoff, s.MaxBackoff
	if minB <= 0 {
		minB = time.Second
	}
	if maxB < minB {
		maxB = max(30*time.Second, minB)
	}
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		resp, err := s.Client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(s.QueueURL),
			MaxNumberOfMessages:         sqsMaxMessages,
			WaitTimeSeconds:             sqsWaitSeconds,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err == nil {
			backoff = 0
			err = s.handle(ctx, out, resp.Messages, log)
		} else if ctx.Err() == nil {
			if awsapi.IsNotFound(err) {
				return fmt.Errorf("receiving from SQS queue %s: %w", s.QueueURL, err)
			}
			s.receiveErrors.Add(1)
			err = fmt.Errorf("receiving from SQS queue %s: %w", s.QueueURL, err)
		}
		if err == nil || ctx.Err() != nil {
			continue
		}
		backoff = min(max(2*backoff, minB), maxB)
		// Jitter keeps several controllers from retrying in step.
		wait := backoff/2 + rand.N(backoff/2+1)
		log.Warn("SQS source backing off", "error", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return nil
}

// receivedMessage is one message of a batch and the event it became.
type receivedMessage struct {
	msg   sqstypes.Message
	event source.Event
	ok    bool
}

// handle parses a batch, resolves its instances with one Filter call, hands the events over and
// deletes what is done with. An error (the filter failed) asks Run to back off; the batch's
// valid messages then come back after their visibility timeout.
func (s *Source) handle(ctx context.Context, out chan<- source.Event, msgs []sqstypes.Message, log *slog.Logger) error {
	if len(msgs) == 0 {
		return nil
	}
	s.received.Add(int64(len(msgs)))
	batch := make([]receivedMessage, len(msgs))
	var done []sqstypes.Message // to delete
	var ids []string
	seen := map[string]bool{}
	for i, m := range msgs {
		batch[i].msg = m
		e, err := ParseEventBridge([]byte(aws.ToString(m.Body)))
		if err != nil {
			if errors.Is(err, ErrUnsupportedEvent) {
				s.unsupported.Add(1)
				log.Info("deleting an EventBridge event spotmax does not consume", "message", aws.ToString(m.MessageId), "reason", err)
			} else {
				s.malformed.Add(1)
				log.Warn("deleting a malformed message", "message", aws.ToString(m.MessageId), "receives", m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)], "error", err)
			}
			done = append(done, m)
			continue
		}
		batch[i].event, batch[i].ok = e, true
		if e.Instance != "" && e.Kind != source.KindLaunchFailure && !seen[e.Instance] {
			seen[e.Instance] = true
			ids = append(ids, e.Instance)
		}
	}
	var groups map[string]string
	var filterErr error
	if s.Filter != nil && len(ids) > 0 {
		groups, filterErr = s.Filter(ctx, ids)
		if filterErr != nil {
			s.filterErrors.Add(1)
			filterErr = fmt.Errorf("looking up the groups of instances %v: %w", ids, filterErr)
		}
	}
	if filterErr == nil {
	handover:
		for _, b := range batch {
			if !b.ok {
				continue
			}
			e := b.event
			if s.Filter != nil && e.Instance != "" && e.Kind != source.KindLaunchFailure {
				g, managed := groups[e.Instance]
				if !managed {
					s.unmanaged.Add(1)
					log.Debug("deleting an event about an instance outside spotmax groups", "instance", e.Instance, "event", e.Kind)
					done = append(done, b.msg)
					continue
				}
				if e.Group == "" {
					e.Group = g
				}
			}
			e.Source = source.SQS
			e.EnsureID()
			select {
			case out <- e:
				s.handedOver.Add(1)
				done = append(done, b.msg)
			case <-ctx.Done():
				// The rest stay in the queue and come back after their visibility timeout.
				break handover
			}
		}
	}
	// Delete even when ctx has ended: what was handed over must not come back.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.delete(dctx, done, log); err != nil && filterErr == nil {
		log.Warn("deleting handled messages", "error", err)
	}
	return filterErr
}

// delete removes messages with one DeleteMessageBatch call per ten.
func (s *Source) delete(ctx context.Context, msgs []sqstypes.Message, log *slog.Logger) error {
	var errs []error
	for start := 0; start < len(msgs); start += sqsMaxMessages {
		chunk := msgs[start:min(start+sqsMaxMessages, len(msgs))]
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		resp, err := s.Client.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(s.QueueURL), Entries: entries})
		if err != nil {
			s.deleteErrors.Add(int64(len(chunk)))
			errs = append(errs, fmt.Errorf("deleting %d messages from %s: %w", len(chunk), s.QueueURL, err))
			continue
		}
		for _, f := range resp.Failed {
			s.deleteErrors.Add(1)
			id := aws.ToString(f.Id)
			if i, err := strconv.Atoi(id); err == nil && i >= 0 && i < len(chunk) {
				id = aws.ToString(chunk[i].MessageId)
			}
			log.Warn("SQS did not delete a message; it will come back", "message", id,
				"code", aws.ToString(f.Code), "reason", aws.ToString(f.Message))
		}
	}
	return errors.Join(errs...)
}
