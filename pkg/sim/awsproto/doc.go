// Package awsproto is the protocol kernel of the simulated AWS region: one home for what every
// simulated service shares on the wire.
//
// A Mux routes each HTTP request to a registered Service by the service in its SigV4 credential
// scope (or, for unsigned requests, by X-Amz-Target prefix, query Version or rpc-v2-cbor path),
// and hands it a Call: the action, the protocol (EC2 query, AWS query, AWS JSON 1.0/1.1, Smithy
// RPC v2 CBOR), the decoded form (Params) or body, and writers for each protocol's response and
// error shape. APIError carries AWS's code, HTTP status and message; each protocol renders it as
// AWS does (EC2's <Response><Errors>, the query ErrorResponse, JSON and CBOR __type with the
// service's error structure and the x-amzn-query-error header). Page is the one nextToken
// scheme. The package knows no service: services import it, never the other way round.
package awsproto
