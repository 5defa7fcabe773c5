package kube

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/spotmax/spotmax/pkg/kube/kubetest"
)

// serviceAccountToken returns a token of a new ServiceAccount and the user name the API server
// gives it, which no role binds: a request made with it is answered 403 naming that user.
func serviceAccountToken(t *testing.T, s *kubetest.Server) (token, user string) {
	t.Helper()
	ctx := context.Background()
	ns := s.Namespace(t, "sa")
	sa, err := s.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "spotmax"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secs := int64(3600)
	tr, err := s.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa.Name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token, "system:serviceaccount:" + ns + ":spotmax"
}

// adminCreds reads the test server's admin kubeconfig: CA, client certificate and key.
func adminCreds(t *testing.T, s *kubetest.Server) (ca, cert, key []byte) {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(s.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	u := kc.AuthInfos[kc.Contexts[kc.CurrentContext].AuthInfo]
	if cert, err = os.ReadFile(u.ClientCertificate); err != nil {
		t.Fatal(err)
	}
	if key, err = os.ReadFile(u.ClientKey); err != nil {
		t.Fatal(err)
	}
	return kc.Clusters[kc.Contexts[kc.CurrentContext].Cluster].CertificateAuthorityData, cert, key
}

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// Every way a kubeconfig gives the server and the credentials, against the real API server.
// Admin credentials prove themselves by reading a node; a service account's token (bound to
// no role) by the 403 that names it.
func TestKubeconfigVariants(t *testing.T) {
	s := kubetest.Shared(t)
	ctx := context.Background()
	ca, cert, key := adminCreds(t, s)
	token, saUser := serviceAccountToken(t, s)
	node := kubetest.Unique("kc-node")
	s.Node(t, node, "", true)

	dir := t.TempDir()
	writeFile(t, dir, "ca.crt", string(ca), 0o600)
	writeFile(t, dir, "admin.crt", string(cert), 0o600)
	writeFile(t, dir, "admin.key", string(key), 0o600)
	writeFile(t, dir, "token", token+"\n", 0o600)
	// An exec plugin as 'aws eks get-token' is one: it prints an ExecCredential and records
	// each run and the KUBERNETES_EXEC_INFO it was given.
	runs := filepath.Join(dir, "runs")
	expires := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	writeFile(t, dir, "get-token", fmt.Sprintf(`#!/bin/sh
echo "$KUBERNETES_EXEC_INFO" >> %q
printf '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"%%s","expirationTimestamp":"%s"}}' "$SPOTMAX_TEST_TOKEN"
`, runs, expires), 0o700)

	cluster := fmt.Sprintf("clusters:\n- name: c\n  cluster:\n    server: %s\n    certificate-authority: ca.crt\n", s.URL)
	context := "contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"
	tests := []struct {
		name, user string
		wantUser   string // "" = admin
	}{
		{"client certificate files relative to the kubeconfig", "    client-certificate: admin.crt\n    client-key: admin.key\n", ""},
		{"inline client certificate", fmt.Sprintf("    client-certificate-data: %s\n    client-key-data: %s\n", b64(cert), b64(key)), ""},
		{"token", "    token: " + token + "\n", saUser},
		{"token file", "    tokenFile: token\n", saUser},
		{"exec plugin", "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: ./get-token\n" +
			"      env:\n      - {name: SPOTMAX_TEST_TOKEN, value: " + token + "}\n      interactiveMode: Never\n", saUser},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, dir, fmt.Sprintf("kubeconfig-%d", i), cluster+context+"users:\n- name: u\n  user:\n"+tt.user, 0o600)
			c, err := Connect(ctx, Source{Path: p, From: "test"}, ConnectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				_, err = c.Node(ctx, node)
			}
			if tt.wantUser == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !IsForbidden(err) || !strings.Contains(err.Error(), `User "`+tt.wantUser+`"`) {
				t.Fatalf("got %v, want 403 for %s", err, tt.wantUser)
			}
		})
	}
	b, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	// Three requests (the check and two reads), one run: the token is kept until it expires.
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], `"interactive":false`) ||
		!strings.Contains(lines[0], `"kind":"ExecCredential"`) {
		t.Errorf("the plugin ran %d times with %q, want once with an ExecCredential spec", len(lines), b)
	}

	// A context picked by name; the current one points at a server that is not there.
	p := writeFile(t, dir, "two-contexts", cluster+"- name: gone\n  cluster: {server: 'https://127.0.0.1:1'}\n"+
		"contexts:\n- name: c\n  context: {cluster: c, user: u}\n- name: broken\n  context: {cluster: gone, user: u}\ncurrent-context: broken\n"+
		"users:\n- name: u\n  user:\n    client-certificate: admin.crt\n    client-key: admin.key\n", 0o600)
	if _, err := Connect(ctx, Source{Path: p, From: "test"}, ConnectOptions{Context: "c", Timeout: 2 * time.Second}); err != nil {
		t.Errorf("context c: %v", err)
	}
	if _, err := Connect(ctx, Source{Path: p, From: "test"}, ConnectOptions{Timeout: 2 * time.Second}); err == nil || !strings.Contains(err.Error(), "https://127.0.0.1:1") {
		t.Errorf("current context: got %v, want the unreachable server named", err)
	}

	// A KUBECONFIG list: the first file to define a name wins (kubectl's merge).
	first := writeFile(t, dir, "first", cluster+context, 0o600)
	second := writeFile(t, dir, "second", "clusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\ncurrent-context: other\n"+
		"users:\n- name: u\n  user:\n    client-certificate: admin.crt\n    client-key: admin.key\n", 0o600)
	c, err := Connect(ctx, Source{Path: first + string(os.PathListSeparator) + second, From: "KUBECONFIG"}, ConnectOptions{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Node(ctx, node); err != nil || c.Server != s.URL {
		t.Errorf("merged kubeconfig: server %s, reading the node: %v", c.Server, err)
	}
}

// In a pod: the service account's token and CA from the mounted directory, the server from
// KUBERNETES_SERVICE_HOST and _PORT.
func TestInClusterConfig(t *testing.T) {
	s := kubetest.Shared(t)
	ca, _, _ := adminCreds(t, s)
	token, saUser := serviceAccountToken(t, s)
	dir := t.TempDir()
	old := serviceAccountDir
	serviceAccountDir = dir
	t.Cleanup(func() { serviceAccountDir = old })
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KUBERNETES_SERVICE_HOST": u.Hostname(), "KUBERNETES_SERVICE_PORT": u.Port()}
	if _, err := InClusterConfig(func(k string) string { return env[k] }, ConnectOptions{}); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "token")) {
		t.Errorf("without a token: got %v, want the token's path named", err)
	}
	writeFile(t, dir, "token", token, 0o600)
	writeFile(t, dir, "ca.crt", string(ca), 0o600)
	if _, err := InClusterConfig(func(string) string { return "" }, ConnectOptions{}); err == nil || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST") {
		t.Errorf("outside a pod: got %v", err)
	}
	cfg, err := InClusterConfig(func(k string) string { return env[k] }, ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(cfg, nil)
	if err := c.Check(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Node(context.Background(), "any"); !IsForbidden(err) || !strings.Contains(err.Error(), saUser) {
		t.Errorf("got %v, want 403 for %s", err, saUser)
	}
}

// A kubeconfig that cannot work is refused before any request, naming the file and what is
// wrong.
func TestBadKubeconfigsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	server := "clusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\n"
	ctx := "contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"
	tests := []struct{ name, content, want string }{
		{"no current context", server + "contexts:\n- name: c\n  context: {cluster: c}\n", "no current-context"},
		{"unknown context", server + "current-context: nope\n", `context "nope" is not defined`},
		{"unknown cluster", "contexts:\n- name: c\n  context: {cluster: x}\ncurrent-context: c\n", `cluster "x" of context "c" is not defined`},
		{"unknown user", server + ctx, `user "u" of context "c" is not defined`},
		{"no server", "clusters:\n- name: c\n  cluster: {}\n" + ctx + "users:\n- name: u\n  user: {}\n", `cluster "c" has no server`},
		{"CA file missing", "clusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1', certificate-authority: ca.crt}\n" + ctx + "users:\n- name: u\n  user: {}\n",
			"reading certificate-authority: open " + filepath.Join(dir, "ca.crt")},
		{"bad base64", "clusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1', certificate-authority-data: '%%%'}\n" + ctx + "users:\n- name: u\n  user: {}\n",
			"certificate-authority-data is not base64"},
		{"key without certificate", server + ctx + "users:\n- name: u\n  user: {client-key-data: " + b64([]byte("x")) + "}\n", "client certificate and key"},
		{"auth provider", server + ctx + "users:\n- name: u\n  user:\n    auth-provider: {name: gcp}\n", "auth-provider, which spotmax does not support"},
		{"old exec API", server + ctx + "users:\n- name: u\n  user:\n    exec: {apiVersion: client.authentication.k8s.io/v1alpha1, command: aws}\n",
			`exec plugin apiVersion "client.authentication.k8s.io/v1alpha1" is not supported`},
		{"not YAML", "clusters: [", "not a usable kubeconfig"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, dir, fmt.Sprintf("kc-%d", i), tt.content, 0o600)
			_, err := LoadConfig(Source{Path: p, From: "--kubeconfig"}, ConnectOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p+" (from --kubeconfig)") {
				t.Errorf("got %v, want an error naming %s and saying %q", err, p, tt.want)
			}
		})
	}
}
