// Package charts holds the tests of the Helm chart charts/spotmax: they render it with the real
// helm command (built by scripts/testassets/build-helm.sh) and apply it to the real
// kube-apiserver of pkg/kube/kubetest.
package charts
