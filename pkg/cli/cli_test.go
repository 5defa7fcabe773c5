package cli

import (
	"context"
	"flag"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	goldenfile "github.com/spotmax/spotmax/pkg/internal/golden"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testEnv is a simulated region with the environment pointing the CLI at it.
type testEnv struct {
	*simtest.Env
	ec2 *ec2.Client
	asg *autoscaling.Client
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	// Real-time clock with short latencies: the CLI measures ages against the wall clock.
	lat := sim.Latencies{Pending: 20 * time.Millisecond, ShuttingDown: 20 * time.Millisecond, Stopping: 20 * time.Millisecond,
		Attach: 10 * time.Millisecond, Detach: 10 * time.Millisecond, CreateVolume: 10 * time.Millisecond,
		DeleteVolume: 10 * time.Millisecond, InterruptionNotice: 2 * time.Minute, ASGCheck: 50 * time.Millisecond}
	env := simtest.Start(t, sim.Options{Latencies: &lat})
	t.Setenv("AWS_ENDPOINT_URL", env.URL())
	t.Setenv("AWS_REGION", env.Region().Name())
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDCLITEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_PROFILE", "")
	return &testEnv{Env: env, ec2: ec2.NewFromConfig(env.Config), asg: autoscaling.NewFromConfig(env.Config)}
}

// group creates a group of n spot instances with a data volume at /dev/sdf and tags, and waits
// until they are in service.
func (e *testEnv) group(t *testing.T, name string, n int32, tags map[string]string) {
	t.Helper()
	e.CreateGroup(t, simtest.GroupSpec{Name: name, Spot: true, DataDevice: "/dev/sdf", Desired: n, Tags: tags})
}

// run runs the CLI with args and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ios, _, out, errOut := Test()
	f := NewFactory(ios)
	code = Run(context.Background(), f, args)
	return out.String(), errOut.String(), code
}

var volatile = []*regexp.Regexp{
	regexp.MustCompile(`\b(i|vol|sir|r|lt|subnet|vpc)-[0-9a-f]{8,17}\b`),
	regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`),
	regexp.MustCompile(`"(age_seconds|lifetime_left_seconds)": -?\d+`),
}

// golden compares got, with ids and times masked, to testdata/name.
func golden(t *testing.T, name, got string) {
	t.Helper()
	masked := got
	for i, re := range volatile {
		switch i {
		case 0:
			masked = re.ReplaceAllStringFunc(masked, func(s string) string { return s[:strings.IndexByte(s, '-')] + "-X" })
		case 1:
			masked = re.ReplaceAllString(masked, "TIME")
		case 2:
			masked = re.ReplaceAllString(masked, `"$1": N`)
		}
	}
	goldenfile.Check(t, filepath.Join("testdata", name), []byte(masked), *update, "go test ./pkg/cli -run "+t.Name()+" -update")
}
