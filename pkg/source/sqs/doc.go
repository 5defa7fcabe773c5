// Package sqs is the EventBridge-on-SQS source: it long-polls the queue that
// `spotmax setup events` creates, parses the EventBridge events spotmax consumes (one parser per
// source and detail type in bridgeParsers), resolves their instances' groups through the
// caller's InstanceFilter, and hands source.Events over. It deletes what it handed over or cannot
// use and never acts on AWS otherwise.
package sqs
