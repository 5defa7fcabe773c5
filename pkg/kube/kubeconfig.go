package kube

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// kubeconfig is the part of a kubeconfig file (clientcmd's v1 Config) spotmax reads.
type kubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Clusters       []struct {
		Name    string    `yaml:"name"`
		Cluster kcCluster `yaml:"cluster"`
	} `yaml:"clusters"`
	Users []struct {
		Name string `yaml:"name"`
		User kcUser `yaml:"user"`
	} `yaml:"users"`
	Contexts []struct {
		Name    string    `yaml:"name"`
		Context kcContext `yaml:"context"`
	} `yaml:"contexts"`
}

type kcCluster struct {
	Server                   string `yaml:"server"`
	TLSServerName            string `yaml:"tls-server-name"`
	InsecureSkipTLSVerify    bool   `yaml:"insecure-skip-tls-verify"`
	CertificateAuthority     string `yaml:"certificate-authority"`
	CertificateAuthorityData string `yaml:"certificate-authority-data"`
	ProxyURL                 string `yaml:"proxy-url"`
	dir                      string // of the file that defined it, for relative paths
}

type kcUser struct {
	ClientCertificate     string         `yaml:"client-certificate"`
	ClientCertificateData string         `yaml:"client-certificate-data"`
	ClientKey             string         `yaml:"client-key"`
	ClientKeyData         string         `yaml:"client-key-data"`
	Token                 string         `yaml:"token"`
	TokenFile             string         `yaml:"tokenFile"`
	Username              string         `yaml:"username"`
	Password              string         `yaml:"password"`
	Exec                  *ExecConfig    `yaml:"exec"`
	AuthProvider          map[string]any `yaml:"auth-provider"`
	dir                   string
}

type kcContext struct {
	Cluster   string `yaml:"cluster"`
	User      string `yaml:"user"`
	Namespace string `yaml:"namespace"`
}

// ExecConfig is a kubeconfig user's credential plugin (client.authentication.k8s.io), as
// 'aws eks update-kubeconfig' writes it: 'aws eks get-token --cluster-name …'.
type ExecConfig struct {
	APIVersion string   `yaml:"apiVersion"`
	Command    string   `yaml:"command"`
	Args       []string `yaml:"args"`
	Env        []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	InstallHint        string `yaml:"installHint"`
	ProvideClusterInfo bool   `yaml:"provideClusterInfo"`
}

// loadKubeconfig merges the files the way kubectl merges a KUBECONFIG list: for each named
// cluster, user and context, and for current-context, the first file that sets it wins.
func loadKubeconfig(paths []string) (*kubeconfig, error) {
	merged := &kubeconfig{}
	seen := map[string]bool{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", p, err)
		}
		var kc kubeconfig
		if err := yaml.Unmarshal(b, &kc); err != nil {
			return nil, fmt.Errorf("%s is not a usable kubeconfig: %w", p, err)
		}
		dir := filepath.Dir(p)
		if merged.CurrentContext == "" {
			merged.CurrentContext = kc.CurrentContext
		}
		for _, c := range kc.Clusters {
			if !seen["cluster/"+c.Name] {
				seen["cluster/"+c.Name] = true
				c.Cluster.dir = dir
				merged.Clusters = append(merged.Clusters, c)
			}
		}
		for _, u := range kc.Users {
			if !seen["user/"+u.Name] {
				seen["user/"+u.Name] = true
				u.User.dir = dir
				merged.Users = append(merged.Users, u)
			}
		}
		for _, c := range kc.Contexts {
			if !seen["context/"+c.Name] {
				seen["context/"+c.Name] = true
				merged.Contexts = append(merged.Contexts, c)
			}
		}
	}
	return merged, nil
}

// resolve picks the context (ctxName, else current-context) and returns its cluster and user.
func (kc *kubeconfig) resolve(ctxName string) (*kcCluster, *kcUser, error) {
	if ctxName == "" {
		ctxName = kc.CurrentContext
	}
	if ctxName == "" {
		return nil, nil, errors.New("no current-context is set and no context was asked for")
	}
	var kctx *kcContext
	for i := range kc.Contexts {
		if kc.Contexts[i].Name == ctxName {
			kctx = &kc.Contexts[i].Context
		}
	}
	if kctx == nil {
		return nil, nil, fmt.Errorf("context %q is not defined", ctxName)
	}
	var cl *kcCluster
	for i := range kc.Clusters {
		if kc.Clusters[i].Name == kctx.Cluster {
			cl = &kc.Clusters[i].Cluster
		}
	}
	if cl == nil {
		return nil, nil, fmt.Errorf("cluster %q of context %q is not defined", kctx.Cluster, ctxName)
	}
	if cl.Server == "" {
		return nil, nil, fmt.Errorf("cluster %q has no server", kctx.Cluster)
	}
	user := &kcUser{}
	if kctx.User != "" {
		user = nil
		for i := range kc.Users {
			if kc.Users[i].Name == kctx.User {
				user = &kc.Users[i].User
			}
		}
		if user == nil {
			return nil, nil, fmt.Errorf("user %q of context %q is not defined", kctx.User, ctxName)
		}
	}
	if user.AuthProvider != nil {
		return nil, nil, fmt.Errorf("user %q uses an auth-provider, which spotmax does not support (use an exec credential plugin, e.g. 'aws eks get-token')", kctx.User)
	}
	return cl, user, nil
}

// fileOrData returns inline base64 data, else the content of a file relative to dir.
func fileOrData(what, data, path, dir string) ([]byte, error) {
	if data != "" {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(data))
		if err != nil {
			return nil, fmt.Errorf("%s-data is not base64: %w", what, err)
		}
		return b, nil
	}
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(relTo(dir, path))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	return b, nil
}

// relTo resolves a kubeconfig's relative path against the file's directory, as kubectl does.
func relTo(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}
