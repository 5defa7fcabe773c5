// Package kube is spotmax's own narrow Kubernetes client, over net/http and encoding/json: the
// few objects spotmax reads and writes (nodes, pods, evictions, Leases) as small types of its
// own, kubeconfig and in-cluster configuration (client certificates, bearer tokens, token files,
// exec credential plugins such as 'aws eks get-token'), and a client-side rate limit. It finds
// the node of an EC2 instance (by spec.providerID, falling back to the private DNS name),
// cordons it, drains it with kubectl drain's rules (PodDisruptionBudgets respected, DaemonSet
// and mirror pods left alone), and waits for a replacement's node to become Ready. It knows
// nothing of the replacement workflow: the "k8s-drain" pre-detach step that uses it is package
// replace/steps/k8sdrain; leader election on a Lease is package leader.
//
// It replaces client-go and kubectl's drain library in the product binary: Go initialises every
// linked package at start, and their API scheme registrations cost every spotmax command tens of
// MB of memory (docs/benchmarks.md). Tests may still use client-go (package kubetest) and
// kubectl's drain (the baseline of BenchmarkDrain).
//
// The kubeconfig comes from an explicit path, else the group's spotmax:k8s_config_file_path, else
// KUBECONFIG or ~/.kube/config; every error names the path that was tried and where it came from.
package kube
