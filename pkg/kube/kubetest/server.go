// Package kubetest runs a real kube-apiserver with etcd (built by scripts/testassets/build-kube.sh)
// for tests, and creates the cluster objects a drain needs: nodes with providerIDs, pods bound to
// them, DaemonSets, PodDisruptionBudgets with the status a disruption controller would write. The
// cluster has no kubelet, scheduler or controllers: a test plays them (Kubelet finishes the pods
// that are terminating; SetPDBAllowed writes a budget's status).
package kubetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/spotmax/spotmax/pkg/internal/testassets"
)

// Server is a running kube-apiserver with its etcd.
type Server struct {
	// URL is the API server's https URL on a loopback port.
	URL string
	// Kubeconfig is a kubeconfig file for a cluster admin (system:masters).
	Kubeconfig string
	// Config and Client are that admin's client configuration and clientset.
	Config *rest.Config
	Client kubernetes.Interface

	dir   string
	procs []*proc
	pki   *pki
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// Start runs a server for one test and stops it when the test ends. It skips the test (fails it
// in CI) when the binaries are not built.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := StartServer(testassets.Path(t, "etcd"), testassets.Path(t, "kube-apiserver"))
	if err != nil {
		t.Fatalf("starting kube-apiserver: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

var shared struct {
	mu  sync.Mutex
	s   *Server
	err error
}

// Shared returns the test binary's one server, starting it on first use. Main stops it; a
// package that uses Shared must have TestMain call Main.
func Shared(t testing.TB) *Server {
	t.Helper()
	etcd, apiserver := testassets.Path(t, "etcd"), testassets.Path(t, "kube-apiserver")
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.s == nil && shared.err == nil {
		shared.s, shared.err = StartServer(etcd, apiserver)
	}
	if shared.err != nil {
		t.Fatalf("starting kube-apiserver: %v", shared.err)
	}
	return shared.s
}

// Main runs the tests and stops the shared server: call it from TestMain as
// os.Exit(kubetest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.s != nil {
		shared.s.Stop()
	}
	return code
}

// StartServer starts etcd and kube-apiserver from the given binaries in a temporary directory and
// waits until the API server is ready and its default namespace exists.
func StartServer(etcdBin, apiserverBin string) (s *Server, err error) {
	dir, err := os.MkdirTemp("", "spotmax-kubetest-")
	if err != nil {
		return nil, err
	}
	s = &Server{dir: dir}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	if _, err := s.run("etcd", etcdBin,
		"--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL, "--unsafe-no-fsync", "--log-level=error"); err != nil {
		return nil, err
	}
	if err := s.waitHTTP(http.DefaultClient, etcdURL+"/health", "etcd", 30*time.Second); err != nil {
		return nil, err
	}

	pki, err := newPKI(dir)
	if err != nil {
		return nil, fmt.Errorf("creating certificates: %w", err)
	}
	s.pki = pki
	s.URL = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	if _, err := s.run("kube-apiserver", apiserverBin,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports[2]),
		"--tls-cert-file="+pki.serverCert, "--tls-private-key-file="+pki.serverKey,
		"--client-ca-file="+pki.caCert,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+pki.saKey, "--service-account-signing-key-file="+pki.saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		// No controller manager creates the default ServiceAccount.
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
	); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(pki.adminCert, pki.adminKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pki.caPEM)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	if err := s.waitHTTP(hc, s.URL+"/readyz", "kube-apiserver", 90*time.Second); err != nil {
		return nil, err
	}

	s.Kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: s.URL, CertificateAuthorityData: pki.caPEM}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificate: pki.adminCert, ClientKey: pki.adminKey}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin"}
	kc.CurrentContext = "test"
	if err := clientcmd.WriteToFile(*kc, s.Kubeconfig); err != nil {
		return nil, err
	}
	s.Config, err = clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		return nil, err
	}
	s.Config.QPS, s.Config.Burst = 500, 1000
	s.Client, err = kubernetes.NewForConfig(s.Config)
	if err != nil {
		return nil, err
	}
	// The bootstrap controller creates "default" shortly after /readyz.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := s.Client.CoreV1().Namespaces().Get(context.Background(), metav1.NamespaceDefault, metav1.GetOptions{})
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("namespace default not created: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops kube-apiserver and etcd and removes their files.
func (s *Server) Stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	s.procs = nil
	_ = os.RemoveAll(s.dir)
}

// WriteKubeconfig writes a copy of the admin kubeconfig with the server replaced by server
// (e.g. a port nothing answers on) and returns its path.
func (s *Server) WriteKubeconfig(t testing.TB, server string) string {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(s.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc.Clusters["test"].Server = server
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *Server) run(name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(s.dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server must not outlive a test binary that crashes before its cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	s.procs = append(s.procs, p)
	return p, nil
}

func (s *Server) waitHTTP(hc *http.Client, url, name string, timeout time.Duration) error {
	p := s.procs[len(s.procs)-1]
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s", name, tail(p.log))
		default:
		}
		resp, err := hc.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s (%v): %s", name, timeout, last, tail(p.log))
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

type pki struct {
	ca                                                        *x509.Certificate
	caKey                                                     *ecdsa.PrivateKey
	serial                                                    int64
	caPEM                                                     []byte
	caCert, serverCert, serverKey, adminCert, adminKey, saKey string
}

// newPKI writes a CA, a serving certificate for 127.0.0.1, an admin client certificate
// (system:masters) and a service-account signing key into dir.
func newPKI(dir string) (*pki, error) {
	p := &pki{}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "spotmax-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	p.caKey, p.serial = caKey, 1
	p.ca, _ = x509.ParseCertificate(caDER)
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	p.caCert = filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(p.caCert, p.caPEM, 0o600); err != nil {
		return nil, err
	}
	if p.serverCert, p.serverKey, err = p.issue(dir, "server", &x509.Certificate{Subject: pkix.Name{CommonName: "kube-apiserver"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, err
	}
	if p.adminCert, p.adminKey, err = p.issue(dir, "admin", &x509.Certificate{Subject: pkix.Name{CommonName: "spotmax-test", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	saDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, err
	}
	p.saKey = filepath.Join(dir, "sa.key")
	if err := os.WriteFile(p.saKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saDER}), 0o600); err != nil {
		return nil, err
	}
	return p, nil
}

// issue signs a certificate from tmpl with a new key and writes both into dir.
func (p *pki) issue(dir, name string, tmpl *x509.Certificate) (certPath, keyPath string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	p.serial++
	now := time.Now()
	tmpl.SerialNumber = big.NewInt(p.serial)
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	return certPath, keyPath, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// UserKubeconfig writes a kubeconfig for a user with a client certificate (CN user, O groups),
// as an IAM identity mapped by aws-auth would be authenticated, and returns its path. The user
// has only the rights RBAC gives it.
func (s *Server) UserKubeconfig(t testing.TB, user string, groups ...string) string {
	t.Helper()
	dir := t.TempDir()
	cert, key, err := s.pki.issue(dir, user, &x509.Certificate{Subject: pkix.Name{CommonName: user, Organization: groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: s.URL, CertificateAuthorityData: s.pki.caPEM}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificate: cert, ClientKey: key}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: user}
	kc.CurrentContext = "test"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}
