// Package awsapi is the one place where AWS errors are classified (not found, capacity,
// throttling, state, credentials). The client interfaces live with the code that uses them.
package awsapi
