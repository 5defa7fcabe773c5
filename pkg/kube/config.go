package kube

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

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
	// QPS and Burst are client-go's client-side rate limit; default 100 and 200. client-go's
	// own default (5 and 10) would make a 100-pod drain (about 200 requests) wait 40 s on the
	// client; the API server protects itself with priority and fairness.
	QPS   float32
	Burst int
	// WrapTransport, when set, wraps the HTTP transport (request counting in benchmarks).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	Log           *slog.Logger
}

// Client is a connection to one cluster.
type Client struct {
	Kube kubernetes.Interface
	// Server is the API server's URL; Source the kubeconfig it came from. Both only for messages.
	Server string
	Source Source
	Log    *slog.Logger
}

// NewClient wraps a clientset (a real one, or the fake one in unit tests).
func NewClient(cs kubernetes.Interface, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{Kube: cs, Log: log}
}

// Connect loads the kubeconfig of src and checks that its API server answers within
// opts.Timeout. Every error is a *KubeconfigError naming the file, where it came from and, once
// known, the server.
func Connect(ctx context.Context, src Source, opts ConnectOptions) (*Client, error) {
	cfg, err := RESTConfig(src, opts)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	check := rest.CopyConfig(cfg)
	check.Timeout = timeout
	cs, err := kubernetes.NewForConfig(check)
	if err != nil {
		return nil, &KubeconfigError{Source: src, Server: cfg.Host, Err: err}
	}
	cctx, cancel := context.WithTimeout(withLog(ctx, opts.Log), timeout)
	defer cancel()
	// /version is readable by every authenticated user and cheap for the server.
	if _, err := discovery.ToServerVersionInterfaceWithContext(cs.Discovery()).ServerVersionWithContext(cctx); err != nil {
		return nil, &KubeconfigError{Source: src, Server: cfg.Host, Err: explainConnect(err, timeout)}
	}
	full, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, &KubeconfigError{Source: src, Server: cfg.Host, Err: err}
	}
	c := NewClient(full, opts.Log)
	c.Server, c.Source = cfg.Host, src
	return c, nil
}

func explainConnect(err error, timeout time.Duration) error {
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("rejected the credentials (for EKS: check the aws-auth mapping of this IAM identity and that 'aws eks get-token' works): %w", err)
	case strings.Contains(err.Error(), "getting credentials"):
		return fmt.Errorf("could not get credentials from the kubeconfig's exec plugin (for EKS: is the aws command on the PATH of spotmax, with AWS credentials?): %w", err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("refused access: %w", err)
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout") || strings.Contains(err.Error(), "deadline exceeded"):
		return fmt.Errorf("not answering within %s: %w", timeout, err)
	}
	return fmt.Errorf("not answering: %w", err)
}

// withLog makes client-go log to log (its throttling notices, for one) in the calls made with
// the returned context, instead of klog's global logger, which writes to stderr.
func withLog(ctx context.Context, log *slog.Logger) context.Context {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return klog.NewContext(ctx, logr.FromSlogHandler(log.Handler()))
}

// RESTConfig reads the kubeconfig of src into a client configuration without contacting the
// server.
func RESTConfig(src Source, opts ConnectOptions) (*rest.Config, error) {
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
	paths = present
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{Precedence: paths},
		&clientcmd.ConfigOverrides{CurrentContext: opts.Context})
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, &KubeconfigError{Source: src, Err: fmt.Errorf("not a usable kubeconfig: %w", err)}
	}
	cfg.QPS, cfg.Burst = opts.QPS, opts.Burst
	if cfg.QPS == 0 {
		cfg.QPS = 100
	}
	if cfg.Burst == 0 {
		cfg.Burst = 200
	}
	cfg.UserAgent = "spotmax/" + version.Version
	// Deprecation warnings of the API server are not the operator's business here.
	cfg.WarningHandler = rest.NoWarnings{}
	if opts.WrapTransport != nil {
		cfg.Wrap(opts.WrapTransport)
	}
	return cfg, nil
}

var errNotExist = errors.New("file does not exist")

// readable reports a missing or unreadable file in words; clientcmd silently skips missing files
// of a precedence list.
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
