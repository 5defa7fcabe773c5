// Package sqs is the simulated Amazon SQS: standard queues with their attributes (delay,
// visibility timeout, retention, maximum size, long polling, redrive to a dead-letter queue,
// access policies), SendMessage with message attributes and their MD5s, ReceiveMessage with
// visibility timeouts and long polls that wait without the region's lock, DeleteMessage and
// DeleteMessageBatch. It speaks AWS JSON 1.0 (current SDKs) and the query protocol (query.go,
// Debian's aws CLI 2.9), both through the same JSON handlers.
//
// spotmax's event source reads its queue here; EventBridge rules (pkg/sim/eventbridge) and
// lifecycle hook notifications deliver into it with Deliver, and Access evaluates a queue's
// access policy for a service principal (policy.go). Its state is guarded by the region's lock,
// which it reaches through the Region interface.
package sqs
