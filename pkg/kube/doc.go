// Package kube is spotmax's pure Kubernetes client: finding the node of an EC2 instance (by
// spec.providerID, falling back to the private DNS name), cordoning it, draining it with
// k8s.io/kubectl/pkg/drain (PodDisruptionBudgets respected, DaemonSet pods left alone), and
// waiting for a replacement's node to become Ready. It knows nothing of the replacement
// workflow: the "k8s-drain" pre-detach step that uses it is package replace/steps/k8sdrain.
//
// The kubeconfig comes from an explicit path, else the group's spotmax:k8s_config_file_path, else
// KUBECONFIG or ~/.kube/config; every error names the path that was tried and where it came from.
package kube
