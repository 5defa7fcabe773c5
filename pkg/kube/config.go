package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/version"
)

// Source is a kubeconfig path and where it came from, so that errors can say which file was
// tried and why that one.
type Source struct {
	// Path is a file, or a list of files separated by the OS list separator (as KUBECONFIG may
	// hold); a list is merged the way kubectl merges it.
	Path string
	// From says where Path came from: "--kubeconfig", "spotmax:k8s_config_file_path of group web",
	// "KUBECONFIG" or "the default ~/.kube/config".
	From string
}

// String renders the source for messages: "/data/spotmax/k8sconfig (from --kubeconfig)".
func (s Source) String() string { return fmt.Sprintf("%s (from %s)", s.Path, s.From) }

// ResolveKubeconfig picks the kubeconfig: flagPath when set, else the group's
// spotmax:k8s_config_file_path when cfg sets it, else KUBECONFIG, else ~/.kube/config. getenv
// reads the environment (os.Getenv outside tests); cfg may be nil.
func ResolveKubeconfig(flagPath string, cfg *groupconfig.Config, getenv func(string) string) Source {
	switch {
	case flagPath != "":
		return Source{Path: flagPath, From: "--kubeconfig"}
	case cfg != nil && cfg.K8sConfigFilePath != "":
		return Source{Path: cfg.K8sConfigFilePath, From: fmt.Sprintf("%s of group %s", groupconfig.TagK8sConfigFilePath, cfg.Group)}
	case getenv("KUBECONFIG") != "":
		return Source{Path: getenv("KUBECONFIG"), From: "KUBECONFIG"}
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return Source{Path: filepath.Join(home, ".kube", "config"), From: "the default ~/.kube/config"}
}

// KubeconfigError says what is wrong with a kubeconfig or the API server it points at.
type KubeconfigError struct {
	Source Source
	// Server is the API server's URL, once the file could be read.
	Server string
	Err    error
}

// Error implements error.
func (e *KubeconfigError) Error() string {
	if e.Server != "" {
		return fmt.Sprintf("kubeconfig %s: API server %s: %v", e.Source, e.Server, e.Err)
	}
	return fmt.Sprintf("kubeconfig %s: %v", e.Source, e.Err)
}

// Unwrap returns the cause.
func (e *KubeconfigError) Unwrap() error { return e.Err }

// ConnectOptions tune Connect. The zero value is usable.
type ConnectOptions struct {
	// Context is the kubeconfig context to use; "" = the file's current-context.
	Context string
	// Timeout bounds the first request that checks that the server answers; default 5s.
	Timeout time.Duration
	// RequestTimeout bounds every request of the client; 0 = only the caller's context. Leader
	// election sets it so that one hung request cannot use up the renew deadline.
	RequestTimeout time.Duration
	// QPS and Burst are the client-side rate limit; default 100 and 200. client-go's default
	// (5 and 10) would make a 100-pod drain (about 200 requests) wait 40 s on the client; the
	// API server protects itself with priority and fairness.
	QPS   float32
	Burst int
	// WrapTransport, when set, wraps the HTTP transport (request counting in benchmarks).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	Log           *slog.Logger
}

// Config is a loaded client configuration: server, TLS and credentials. LoadConfig and
// InClusterConfig make one; NewClient turns it into a Client.
type Config struct {
	// Host is the API server's URL.
	Host string
	// Source is the kubeconfig it came from (zero for the in-cluster configuration).
	Source Source
	opts   ConnectOptions
	tls    *tls.Config
	proxy  func(*http.Request) (*url.URL, error)
	auth   authenticator
}

// Client is a connection to one cluster.
type Client struct {
	// Server is the API server's URL; Source the kubeconfig it came from. Both only for messages.
	Server string
	Source Source
	Log    *slog.Logger
	t      *transport
}

// NewClient makes a client of cfg; it does not contact the server.
func NewClient(cfg *Config, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.auth == nil {
		cfg.auth = noAuth{}
	}
	o := cfg.opts
	qps, burst := float64(o.QPS), o.Burst
	if qps <= 0 {
		qps = 100
	}
	if burst <= 0 {
		burst = 200
	}
	var rt http.RoundTripper = &http.Transport{
		Proxy:                 cfg.proxy,
		TLSClientConfig:       cfg.tls,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   25,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	if o.WrapTransport != nil {
		rt = o.WrapTransport(rt)
	}
	return &Client{Server: cfg.Host, Source: cfg.Source, Log: log, t: &transport{
		base:      strings.TrimSuffix(cfg.Host, "/"),
		hc:        &http.Client{Transport: rt, Timeout: o.RequestTimeout},
		auth:      cfg.auth,
		limit:     newLimiter(qps, burst),
		userAgent: "spotmax/" + version.Version,
	}}
}

// Connect loads the kubeconfig of src and checks that its API server answers within
// opts.Timeout. Every error is a *KubeconfigError naming the file, where it came from and, once
// known, the server.
func Connect(ctx context.Context, src Source, opts ConnectOptions) (*Client, error) {
	cfg, err := LoadConfig(src, opts)
	if err != nil {
		return nil, err
	}
	c := NewClient(cfg, opts.Log)
	if err := c.Check(ctx, opts.Timeout); err != nil {
		return nil, &KubeconfigError{Source: src, Server: cfg.Host, Err: err}
	}
	return c, nil
}

// Check asks the server for its version (readable by every authenticated user and cheap for
// the server) within timeout (default 5s) and explains a failure in words.
func (c *Client) Check(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	if err := c.t.do(cctx, http.MethodGet, "/version", nil, nil, "", &v); err != nil {
		return explainConnect(err, timeout)
	}
	return nil
}

func explainConnect(err error, timeout time.Duration) error {
	switch {
	case IsUnauthorized(err):
		return fmt.Errorf("rejected the credentials (for EKS: check the aws-auth mapping of this IAM identity and that 'aws eks get-token' works): %w", err)
	case strings.Contains(err.Error(), "getting credentials"):
		return fmt.Errorf("could not get credentials from the kubeconfig's exec plugin (for EKS: is the aws command on the PATH of spotmax, with AWS credentials?): %w", err)
	case IsForbidden(err):
		return fmt.Errorf("refused access: %w", err)
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout") || strings.Contains(err.Error(), "deadline exceeded"):
		return fmt.Errorf("not answering within %s: %w", timeout, err)
	}
	return fmt.Errorf("not answering: %w", err)
}

// LoadConfig reads the kubeconfig of src into a client configuration without contacting the
// server. Errors are *KubeconfigError.
func LoadConfig(src Source, opts ConnectOptions) (*Config, error) {
	paths := filepath.SplitList(src.Path)
	if len(paths) == 0 {
		return nil, &KubeconfigError{Source: src, Err: errors.New("no path")}
	}
	// Like kubectl, a list (KUBECONFIG=a:b) skips files that do not exist; a single path must.
	var present []string
	for _, p := range paths {
		err := readable(p)
		switch {
		case errors.Is(err, errNotExist) && len(paths) > 1:
		case err != nil:
			return nil, &KubeconfigError{Source: src, Err: err}
		default:
			present = append(present, p)
		}
	}
	if len(present) == 0 {
		return nil, &KubeconfigError{Source: src, Err: errors.New("none of the files exists")}
	}
	kc, err := loadKubeconfig(present)
	if err != nil {
		return nil, &KubeconfigError{Source: src, Err: fmt.Errorf("not a usable kubeconfig: %w", err)}
	}
	cl, user, err := kc.resolve(opts.Context)
	if err != nil {
		return nil, &KubeconfigError{Source: src, Err: fmt.Errorf("not a usable kubeconfig: %w", err)}
	}
	cfg, err := configFor(cl, user, opts)
	if err != nil {
		return nil, &KubeconfigError{Source: src, Server: cl.Server, Err: fmt.Errorf("not a usable kubeconfig: %w", err)}
	}
	cfg.Source = src
	return cfg, nil
}

// configFor builds the TLS configuration and credentials of a kubeconfig's cluster and user.
func configFor(cl *kcCluster, user *kcUser, opts ConnectOptions) (*Config, error) {
	host := cl.Server
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	u, err := url.Parse(host)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("server %q is not a URL", cl.Server)
	}
	cfg := &Config{Host: host, opts: opts, proxy: http.ProxyFromEnvironment, auth: noAuth{}}
	if cl.ProxyURL != "" {
		pu, err := url.Parse(cl.ProxyURL)
		if err != nil {
			return nil, fmt.Errorf("proxy-url %q: %w", cl.ProxyURL, err)
		}
		cfg.proxy = http.ProxyURL(pu)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cl.TLSServerName}
	ca, err := fileOrData("certificate-authority", cl.CertificateAuthorityData, cl.CertificateAuthority, cl.dir)
	if err != nil {
		return nil, err
	}
	switch {
	case cl.InsecureSkipTLSVerify && ca != nil:
		return nil, errors.New("insecure-skip-tls-verify and a certificate authority are both set; keep one")
	case cl.InsecureSkipTLSVerify:
		tc.InsecureSkipVerify = true
	case ca != nil:
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, errors.New("the certificate authority holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	certPEM, err := fileOrData("client-certificate", user.ClientCertificateData, user.ClientCertificate, user.dir)
	if err != nil {
		return nil, err
	}
	keyPEM, err := fileOrData("client-key", user.ClientKeyData, user.ClientKey, user.dir)
	if err != nil {
		return nil, err
	}
	if certPEM != nil || keyPEM != nil {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("client certificate and key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	cfg.tls = tc
	switch {
	case user.Exec != nil:
		a, err := newExecAuth(*user.Exec, user.dir, host)
		if err != nil {
			return nil, err
		}
		if len(tc.Certificates) == 0 {
			tc.GetClientCertificate = a.clientCertificate
		}
		cfg.auth = a
	case user.Token != "":
		cfg.auth = bearer(user.Token)
	case user.TokenFile != "":
		cfg.auth = &tokenFile{path: relTo(user.dir, user.TokenFile), read: os.ReadFile}
	case user.Username != "":
		cfg.auth = basic{user: user.Username, password: user.Password}
	}
	return cfg, nil
}

// serviceAccountDir holds the in-cluster token and CA (a variable for tests).
var serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// InClusterConfig is the configuration of a pod's service account: KUBERNETES_SERVICE_HOST and
// _PORT, the mounted token (read again every minute, the kubelet rotates it) and CA.
func InClusterConfig(getenv func(string) string, opts ConnectOptions) (*Config, error) {
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
	}
	tokenPath := filepath.Join(serviceAccountDir, "token")
	if err := readable(tokenPath); err != nil {
		return nil, fmt.Errorf("service account token %s: %w", tokenPath, err)
	}
	caPath := filepath.Join(serviceAccountDir, "ca.crt")
	ca, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("service account CA %s: %w", caPath, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("service account CA %s holds no PEM certificate", caPath)
	}
	return &Config{Host: "https://" + net.JoinHostPort(host, port), opts: opts, proxy: http.ProxyFromEnvironment,
		tls:  &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool},
		auth: &tokenFile{path: tokenPath, read: os.ReadFile}}, nil
}

var errNotExist = errors.New("file does not exist")

// readable reports a missing or unreadable file in words.
func readable(p string) error {
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errNotExist
	case err != nil:
		return fmt.Errorf("cannot read it: %w", err)
	case st.IsDir():
		return errors.New("cannot read it: is a directory")
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("cannot read it: %w", err)
	}
	_ = f.Close()
	return nil
}
