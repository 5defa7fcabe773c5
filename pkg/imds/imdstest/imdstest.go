// Package imdstest runs amazon-ec2-metadata-mock, AWS's own IMDS emulator (built by
// scripts/testassets/build-metadata-mock.sh), as a child process on a loopback port for tests,
// and stops it when the test ends. Without the built binary the test is skipped (failed when
// SPOTMAX_REQUIRE_ASSETS=1).
package imdstest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/internal/testassets"
)

// Never is a notice delay that does not come during a test. The emulator shows every notice at
// once by default; tests that want none push them out of reach.
const Never = 24 * 3600

// Options configure the emulator. Delays are in seconds after it starts; Never for no notice.
type Options struct {
	// V2Only refuses requests without a session token (-I).
	V2Only bool
	// SpotDelay is when spot/instance-action appears (-d).
	SpotDelay int
	// RebalanceDelay is when events/recommendations/rebalance appears.
	RebalanceDelay int
	// ASGTerminationDelay is when autoscaling/target-lifecycle-state turns Terminated.
	ASGTerminationDelay int
	// Tags are the instance tags shown under tags/instance/ (instead of the emulator's Name and
	// Test). At most two, the number of tag paths the emulator has.
	Tags map[string]string
	// InstanceID and Region override the emulator's defaults in meta-data (not in the identity
	// document).
	InstanceID string
}

// Mock is a running emulator.
type Mock struct {
	t    testing.TB
	bin  string
	dir  string
	opts Options
	env  []string
	port int
	cmd  *exec.Cmd
	log  string
	// URL is the IMDS endpoint, http://127.0.0.1:PORT.
	URL string
}

// Start runs the emulator with opts until the test ends.
func Start(t testing.TB, opts Options) *Mock {
	t.Helper()
	dir := t.TempDir()
	m := &Mock{t: t, bin: testassets.Path(t, "ec2-metadata-mock"), dir: dir, opts: opts, port: freePort(t),
		log: filepath.Join(dir, "mock.log"),
		// HOME points away from any aemm-config.json of the developer.
		env: append(os.Environ(), "HOME="+dir)}
	m.URL = fmt.Sprintf("http://127.0.0.1:%d", m.port)
	m.start()
	t.Cleanup(m.Stop)
	return m
}

func (m *Mock) args() []string {
	o := m.opts
	args := []string{"-n", "127.0.0.1", "-p", strconv.Itoa(m.port),
		"-d", strconv.Itoa(o.SpotDelay),
		"--rebalance-delay-sec", strconv.Itoa(o.RebalanceDelay),
		"--asg-termination-delay-sec", strconv.Itoa(o.ASGTerminationDelay),
		"-c", writeConfig(m.t, m.dir, o)}
	if o.V2Only {
		args = append(args, "-I")
	}
	return args
}

func writeConfig(t testing.TB, dir string, opts Options) string {
	t.Helper()
	paths, values := map[string]string{}, map[string]string{}
	slots := []string{"tags-instance-name", "tags-instance-test"}
	if len(opts.Tags) > len(slots) {
		t.Fatalf("imdstest: the emulator shows at most %d tags, got %d", len(slots), len(opts.Tags))
	}
	i := 0
	for k, v := range opts.Tags {
		paths[slots[i]] = "/latest/meta-data/tags/instance/" + k
		values[slots[i]] = v
		i++
	}
	for ; i < len(slots); i++ {
		// Unused tag slots are moved out of the way rather than left as Name/Test.
		paths[slots[i]] = fmt.Sprintf("/latest/meta-data/unused-tag-%d", i)
	}
	if opts.InstanceID != "" {
		values["instance-id"] = opts.InstanceID
	}
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"paths": paths, "values": values}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "aemm-config.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (m *Mock) start() {
	m.t.Helper()
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		m.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(m.bin, m.args()...)
	cmd.Env = m.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("starting ec2-metadata-mock: %v", err)
	}
	m.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodPut, m.URL+"/latest/api/token", nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(m.log)
	m.Stop()
	m.t.Fatalf("ec2-metadata-mock did not answer on %s within 10s; its log:\n%s", m.URL, b)
}

// Stop kills the emulator (IMDS goes down). Stopping a stopped emulator does nothing.
func (m *Mock) Stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	m.cmd = nil
}

// Restart starts the emulator again on the same port, with its options changed by edit if
// given. Its notice delays count from the restart, and the tokens it handed out before are no
// longer valid (a client must fetch a new one).
func (m *Mock) Restart(edit func(o *Options)) {
	m.t.Helper()
	m.Stop()
	if edit != nil {
		edit(&m.opts)
	}
	m.start()
}
