package kube

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/kube/kubetest"
)

func TestResolveKubeconfig(t *testing.T) {
	env := map[string]string{"HOME": "/home/op"}
	getenv := func(k string) string { return env[k] }
	group := &groupconfig.Config{Group: "web", K8sConfigFilePath: "/data/spotmax/k8sconfig"}
	tests := []struct {
		name     string
		flag     string
		cfg      *groupconfig.Config
		kubeenv  string
		wantPath string
		wantFrom string
	}{
		{"flag wins", "/tmp/kc", group, "/env/kc", "/tmp/kc", "--kubeconfig"},
		{"group tag", "", group, "/env/kc", "/data/spotmax/k8sconfig", "spotmax:k8s_config_file_path of group web"},
		{"KUBECONFIG", "", &groupconfig.Config{Group: "web"}, "/env/kc", "/env/kc", "KUBECONFIG"},
		{"home default", "", nil, "", "/home/op/.kube/config", "the default ~/.kube/config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env["KUBECONFIG"] = tt.kubeenv
			got := ResolveKubeconfig(tt.flag, tt.cfg, getenv)
			if got.Path != tt.wantPath || got.From != tt.wantFrom {
				t.Errorf("got %+v, want path %q from %q", got, tt.wantPath, tt.wantFrom)
			}
		})
	}
}

// writeKubeconfig writes a kubeconfig for server with no credentials.
func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: server, InsecureSkipTLSVerify: true}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "secret-token"}
	kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "c"
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// execKubeconfig writes a kubeconfig that gets its token from a command, as
// 'aws eks update-kubeconfig' writes it, with a command that does not exist.
func execKubeconfig(t *testing.T, server string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: server, InsecureSkipTLSVerify: true}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1beta1",
		Command: "spotmax-no-such-aws", Args: []string{"eks", "get-token", "--cluster-name", "test"}, InteractiveMode: clientcmdapi.NeverExecInteractiveMode}}
	kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "c"
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConnectErrorsNameTheFileAndTheServer(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("this: [is not a kubeconfig"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A port nothing listens on: connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "https://" + l.Addr().String()
	_ = l.Close()
	// A server that accepts connections and never answers.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hang.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()

	tests := []struct {
		name string
		path string
		want []string
	}{
		{"missing", filepath.Join(dir, "nope"), []string{filepath.Join(dir, "nope"), "(from --kubeconfig)", "file does not exist"}},
		{"directory", dir, []string{dir, "cannot read it: is a directory"}},
		{"not a kubeconfig", garbage, []string{garbage, "not a usable kubeconfig"}},
		{"refused", writeKubeconfig(t, refused), []string{"API server " + refused, "not answering", "connection refused"}},
		{"exec plugin missing", execKubeconfig(t, refused), []string{"could not get credentials", "spotmax-no-such-aws"}},
		{"hanging", writeKubeconfig(t, "https://"+hang.Addr().String()), []string{"API server https://" + hang.Addr().String(), "not answering within 300ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Connect(context.Background(), Source{Path: tt.path, From: "--kubeconfig"}, ConnectOptions{Timeout: 300 * time.Millisecond})
			t.Logf("error: %v", err)
			var kerr *KubeconfigError
			if !errors.As(err, &kerr) {
				t.Fatalf("got %v, want a *KubeconfigError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret-token") {
				t.Errorf("error %q shows the token", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %s: the connect timeout was not applied", d)
			}
		})
	}
}

func TestConnectToRealAPIServer(t *testing.T) {
	s := kubetest.Shared(t)
	c, err := Connect(context.Background(), Source{Path: s.Kubeconfig, From: "test"}, ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Server != s.URL {
		t.Errorf("server %q, want %q", c.Server, s.URL)
	}
	// Like kubectl, a KUBECONFIG list skips files that do not exist, unless none does.
	missing := filepath.Join(t.TempDir(), "missing")
	list := Source{Path: missing + string(os.PathListSeparator) + s.Kubeconfig, From: "KUBECONFIG"}
	if _, err := Connect(context.Background(), list, ConnectOptions{}); err != nil {
		t.Errorf("list with a missing entry: %v", err)
	}
	none := Source{Path: missing + string(os.PathListSeparator) + missing + "2", From: "KUBECONFIG"}
	_, err = Connect(context.Background(), none, ConnectOptions{})
	if err == nil || !strings.Contains(err.Error(), "none of the files exists") || !strings.Contains(err.Error(), missing) {
		t.Errorf("got %v, want an error naming %s", err, missing)
	}
	// Credentials the server does not know.
	_, err = Connect(context.Background(), Source{Path: writeKubeconfig(t, s.URL), From: "test"}, ConnectOptions{})
	if err == nil || !strings.Contains(err.Error(), "rejected the credentials") {
		t.Errorf("got %v, want rejected credentials", err)
	}
}
