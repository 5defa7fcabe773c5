// Package consultest runs a real Consul agent (v1.15.4, built by
// scripts/testassets/build-consul.sh) in dev mode on a loopback address for tests, and stops it
// when the test ends. Without the built binary the test is skipped (failed when
// SPOTMAX_REQUIRE_ASSETS=1).
package consultest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/internal/testassets"
)

// Options configure the agent.
type Options struct {
	// Bind is the loopback address the agent listens on (HTTP and Serf), e.g. 127.0.0.5, to play
	// the agent of a simulated instance with that private IP. Default 127.0.0.1.
	Bind string
	// ACL turns ACLs on with default policy deny; the agent's management token is Server.Token.
	ACL bool
}

// Server is a running Consul agent.
type Server struct {
	// Addr is host:port of its HTTP API.
	Addr string
	Host string
	Port int
	// Token is the management token when ACLs are on.
	Token string
	cmd   *exec.Cmd
	log   *bytes.Buffer
	mu    *sync.Mutex
}

// Start runs a Consul agent in dev mode until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := testassets.Path(t, "consul")
	host := o.Bind
	if host == "" {
		host = "127.0.0.1"
	}
	ports := freePorts(t, host, 4)
	dir := t.TempDir()
	s := &Server{Host: host, Port: ports[0], Addr: net.JoinHostPort(host, strconv.Itoa(ports[0])), log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	args := []string{"agent", "-dev", "-bind", host, "-client", host, "-node", "node-" + strings.ReplaceAll(host, ".", "-"),
		"-http-port", strconv.Itoa(ports[0]), "-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-serf-lan-port", strconv.Itoa(ports[1]), "-serf-wan-port", strconv.Itoa(ports[2]), "-server-port", strconv.Itoa(ports[3]),
		"-log-level", "warn"}
	if o.ACL {
		s.Token = "5f0e1c1a-7d0b-4c7e-9d3e-0a1b2c3d4e5f"
		cfg := fmt.Sprintf(`acl {
  enabled = true
  default_policy = "deny"
  enable_token_persistence = false
  tokens {
    initial_management = %q
    agent = %q
  }
}
`, s.Token, s.Token)
		p := filepath.Join(dir, "acl.hcl")
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-config-file", p)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = lockedBuffer{s}
	cmd.Stderr = lockedBuffer{s}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting consul: %v", err)
	}
	s.cmd = cmd
	t.Cleanup(s.Stop)
	if err := s.waitLeader(15 * time.Second); err != nil {
		s.Stop()
		t.Fatalf("consul agent at %s: %v; its log:\n%s", s.Addr, err, s.Log())
	}
	return s
}

type lockedBuffer struct{ s *Server }

func (w lockedBuffer) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.log.Write(p)
}

// Log returns what the agent printed.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Stop ends the agent (it exits with status 1 on SIGTERM, which is normal for Consul).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

func (s *Server) waitLeader(within time.Duration) error {
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.Addr + "/v1/status/leader")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			if resp.StatusCode == http.StatusOK && len(strings.Trim(last, `" `+"\n")) > 0 {
				// The agent answers before it has synced its node: wait until it lists itself.
				if s.do(http.MethodGet, "/v1/agent/self", nil, nil) == nil {
					return nil
				}
			}
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no leader within %v (last answer %q)", within, last)
}

func freePorts(t testing.TB, host string, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatalf("finding a free port on %s: %v", host, err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// do sends one request with the management token (if any) and decodes the answer into out.
func (s *Server) do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+s.Addr+path, body)
	if err != nil {
		return err
	}
	if s.Token != "" {
		req.Header.Set("X-Consul-Token", s.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Register registers a service with a passing TTL check, as an application on the instance does.
func (s *Server) Register(t testing.TB, id, name string) {
	t.Helper()
	reg := map[string]any{"ID": id, "Name": name, "Port": 8080,
		"Check": map[string]any{"CheckID": "ttl-" + id, "TTL": "10m", "Status": "passing"}}
	if err := s.do(http.MethodPut, "/v1/agent/service/register", reg, nil); err != nil {
		t.Fatalf("registering service %s with consul at %s: %v", id, s.Addr, err)
	}
}

// Services returns the ids of the services registered with the agent.
func (s *Server) Services(t testing.TB) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := s.do(http.MethodGet, "/v1/agent/services", nil, &m); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for id := range m {
		ids = append(ids, id)
	}
	return ids
}

// Passing returns how many instances of a service are healthy, as a client of discovery sees
// it: /v1/health/service/NAME?passing.
func (s *Server) Passing(t testing.TB, name string) int {
	t.Helper()
	var entries []json.RawMessage
	if err := s.do(http.MethodGet, "/v1/health/service/"+name+"?passing", nil, &entries); err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// CreateToken makes an ACL token with a policy of the given rules (HCL) and returns its secret.
func (s *Server) CreateToken(t testing.TB, name, rules string) string {
	t.Helper()
	var pol struct{ ID string }
	if err := s.do(http.MethodPut, "/v1/acl/policy", map[string]any{"Name": name, "Rules": rules}, &pol); err != nil {
		t.Fatalf("creating ACL policy %s: %v", name, err)
	}
	var tok struct{ SecretID string }
	if err := s.do(http.MethodPut, "/v1/acl/token", map[string]any{"Description": name, "Policies": []map[string]string{{"ID": pol.ID}}}, &tok); err != nil {
		t.Fatalf("creating ACL token %s: %v", name, err)
	}
	return tok.SecretID
}
