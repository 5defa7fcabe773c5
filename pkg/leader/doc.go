// Package leader makes sure one `spotmax run` acts on a region at a time: the Elector interface
// (campaign, lead until the term ends, campaign again) and its two implementations over
// coordination services users already run, a Consul lock (ConsulLock) and a Kubernetes Lease
// (KubeLease). The controller runs one Run per term of leadership (controller.RunElected).
package leader
