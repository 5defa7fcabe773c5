package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// execAuth gets credentials from a kubeconfig's exec plugin (the client.authentication.k8s.io
// protocol): it runs the command with KUBERNETES_EXEC_INFO set and reads an ExecCredential from
// its standard output, a token or a client certificate, until the credential's
// expirationTimestamp or a 401.
type execAuth struct {
	cfg ExecConfig
	dir string // the kubeconfig's, for a relative command path
	// server is passed to plugins that ask for cluster info.
	server string

	mu      sync.Mutex
	token   string
	cert    *tls.Certificate
	expires time.Time // zero = until a 401
	valid   bool
}

// execCredential is the plugin's answer.
type execCredential struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Status     *struct {
		Token                 string     `json:"token"`
		ClientCertificateData string     `json:"clientCertificateData"`
		ClientKeyData         string     `json:"clientKeyData"`
		ExpirationTimestamp   *time.Time `json:"expirationTimestamp"`
	} `json:"status"`
}

var execAPIVersions = map[string]bool{
	"client.authentication.k8s.io/v1":       true,
	"client.authentication.k8s.io/v1beta1":  true,
	"client.authentication.k8s.io/v1alpha1": false, // removed in Kubernetes 1.24
}

func newExecAuth(cfg ExecConfig, dir, server string) (*execAuth, error) {
	if cfg.Command == "" {
		return nil, errors.New("exec plugin has no command")
	}
	if !execAPIVersions[cfg.APIVersion] {
		return nil, fmt.Errorf("exec plugin apiVersion %q is not supported (want client.authentication.k8s.io/v1 or v1beta1)", cfg.APIVersion)
	}
	// Like client-go, a relative command with a path separator is relative to the kubeconfig.
	if strings.ContainsRune(cfg.Command, os.PathSeparator) {
		cfg.Command = relTo(dir, cfg.Command)
	}
	return &execAuth{cfg: cfg, dir: dir, server: server}, nil
}

func (a *execAuth) authorize(ctx context.Context, r *http.Request) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.ensure(ctx); err != nil {
		return err
	}
	if a.token != "" {
		r.Header.Set("Authorization", "Bearer "+a.token)
	}
	return nil
}

func (a *execAuth) refresh() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.valid = false
	return true
}

// clientCertificate is the TLS hook for plugins that answer with a client certificate.
func (a *execAuth) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.ensure(context.Background()); err != nil {
		return nil, err
	}
	if a.cert == nil {
		return &tls.Certificate{}, nil
	}
	return a.cert, nil
}

// ensure runs the plugin when there is no valid credential; a.mu is held.
func (a *execAuth) ensure(ctx context.Context) error {
	if a.valid && (a.expires.IsZero() || time.Now().Before(a.expires)) {
		return nil
	}
	info := map[string]any{"apiVersion": a.cfg.APIVersion, "kind": "ExecCredential", "spec": map[string]any{"interactive": false}}
	if a.cfg.ProvideClusterInfo {
		info["spec"].(map[string]any)["cluster"] = map[string]any{"server": a.server}
	}
	infoJSON, err := json.Marshal(info)
	if err != nil {
		return err
	}
	// A plugin that hangs must not hang spotmax: one minute is ample for 'aws eks get-token'.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, a.cfg.Command, a.cfg.Args...)
	cmd.Env = append(os.Environ(), "KUBERNETES_EXEC_INFO="+string(infoJSON))
	for _, e := range a.cfg.Env {
		cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) && errors.Is(ee.Err, exec.ErrNotFound) {
			hint := ""
			if a.cfg.InstallHint != "" {
				hint = "\n\n" + a.cfg.InstallHint
			}
			return fmt.Errorf("getting credentials: exec: executable %s not found%s", a.cfg.Command, hint)
		}
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 500 {
			msg = msg[:500] + "…"
		}
		return fmt.Errorf("getting credentials: exec: running %s: %w: %s", a.cfg.Command, err, msg)
	}
	var cred execCredential
	if err := json.Unmarshal(stdout.Bytes(), &cred); err != nil {
		return fmt.Errorf("getting credentials: exec: %s did not print an ExecCredential: %w", a.cfg.Command, err)
	}
	if cred.Kind != "ExecCredential" || cred.APIVersion != a.cfg.APIVersion || cred.Status == nil {
		return fmt.Errorf("getting credentials: exec: %s printed kind %q apiVersion %q without status, want an ExecCredential of %s",
			a.cfg.Command, cred.Kind, cred.APIVersion, a.cfg.APIVersion)
	}
	st := cred.Status
	a.token, a.cert = st.Token, nil
	if st.ClientCertificateData != "" || st.ClientKeyData != "" {
		c, err := tls.X509KeyPair([]byte(st.ClientCertificateData), []byte(st.ClientKeyData))
		if err != nil {
			return fmt.Errorf("getting credentials: exec: the client certificate of %s: %w", a.cfg.Command, err)
		}
		a.cert = &c
	}
	if a.token == "" && a.cert == nil {
		return fmt.Errorf("getting credentials: exec: %s returned neither a token nor a client certificate", a.cfg.Command)
	}
	a.expires = time.Time{}
	if st.ExpirationTimestamp != nil {
		a.expires = *st.ExpirationTimestamp
	}
	a.valid = true
	return nil
}
