// Package k8sdrain is the replacement workflow's "k8s-drain" pre-detach step: it cordons the old
// instance's node, waits for the replacement's node, and drains the old one, with the pure
// Kubernetes client of package pkg/kube. Its registration, with its metric, is in package
// replace/steps.
package k8sdrain
