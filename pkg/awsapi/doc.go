// Package awsapi owns spotmax's view of the AWS APIs: the small client interfaces with the SDK's
// exact method signatures (so *ec2.Client and *autoscaling.Client satisfy them and paginators
// and waiters keep working), and the one place where AWS errors are classified (not found,
// capacity, throttling, state, credentials).
package awsapi
