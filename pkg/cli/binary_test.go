package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// buildSpotmax builds the real spotmax binary for tests that run it as users do.
func buildSpotmax(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the spotmax binary; skipped in -short mode")
	}
	bin := filepath.Join(t.TempDir(), "spotmax")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/spotmax/spotmax/cmd/spotmax")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building spotmax: %v\n%s", err, out)
	}
	return bin
}

type binResult struct {
	stdout, stderr string
	code           int
}

// runBin runs the binary with the test's AWS environment (newTestEnv sets it).
func runBin(ctx context.Context, bin string, args ...string) binResult {
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Env = os.Environ()
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return binResult{out.String(), errOut.String(), code}
}

// Issue 11, cases 2 and 3, through the real binary: two `spotmax replace` of one instance at
// the same time launch one replacement (the other exits 7 naming the instance and its owner), and
// a journal forged on an instance — naming another group's instance as its replacement — is
// refused by `spotmax replace --resume` (exit 8) without touching that instance.
func TestBinaryConcurrentAndForgedJournals(t *testing.T) {
	bin := buildSpotmax(t)
	e := newTestEnv(t)
	tags := map[string]string{groupconfig.TagGroup: "web", groupconfig.TagPersistenceDev: "/dev/sdf",
		groupconfig.TagDetachingDelaySeconds: "0", groupconfig.TagPreactionDetachDelaySeconds: "0"}
	e.group(t, "web", 2, tags)
	e.group(t, "db", 1, map[string]string{groupconfig.TagGroup: "db"})
	r := e.Region()
	g, _ := r.Group("web")
	old := g.Members[0].InstanceID
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	res := make([]binResult, 2)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = runBin(ctx, bin, "replace", old, "--yes", "--release-timeout", "2s", "--poll-interval", "20ms")
		}()
	}
	wg.Wait()
	ok, busy := 0, 0
	for _, x := range res {
		switch x.code {
		case 0:
			ok++
		case ExitBusy:
			busy++
			if !strings.Contains(x.stderr, old) || !strings.Contains(x.stderr, "is being replaced by spotmax@") {
				t.Errorf("busy message does not name the instance and its owner:\n%s", x.stderr)
			}
		default:
			t.Errorf("exit %d:\n%s", x.code, x.stderr)
		}
	}
	if ok != 1 || busy != 1 {
		t.Fatalf("two concurrent replaces: %d succeeded, %d busy; want 1 and 1", ok, busy)
	}
	launched := 0
	for _, in := range r.Instances() {
		if in.Tags[groupconfig.StateReplaces] == old {
			launched++
		}
	}
	if launched != 1 {
		t.Errorf("%d replacements launched for %s, want 1", launched, old)
	}

	// The forged journal, as root on an instance of web could write it with its own tags.
	g, _ = r.Group("web")
	forger := g.Members[0].InstanceID
	dbg, _ := r.Group("db")
	victim := dbg.Members[0].InstanceID
	forged := map[string]string{groupconfig.StateJournalGroup: "web", groupconfig.StatePhase: "launched",
		groupconfig.StateReplacement: victim, groupconfig.StateReason: "manual", groupconfig.StateToken: "feedfacefeedface"}
	var ts []ec2types.Tag
	for k, v := range forged {
		ts = append(ts, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	if _, err := e.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{forger}, Tags: ts}); err != nil {
		t.Fatal(err)
	}
	r.Advance(5 * time.Second) // past EC2's tag visibility: --resume finds the journal by its tag
	x := runBin(ctx, bin, "replace", "--resume", "--group", "web", "--yes", "--poll-interval", "20ms")
	if x.code != ExitUntrusted || !strings.Contains(x.stderr, victim) || !strings.Contains(x.stderr, "not acted on") {
		t.Errorf("resume of a forged journal: exit %d, want %d naming %s:\n%s", x.code, ExitUntrusted, victim, x.stderr)
	}
	in, _ := r.Instance(victim)
	dbg, _ = r.Group("db")
	if _, member := dbg.Member(victim); in.State != "running" || !member {
		t.Errorf("instance %s of group db after the forged journal: %s, member of db %v", victim, in.State, member)
	}
}

// The commands a failure tells the operator to run must exist: the resume hint parses.
func TestResumeHintIsACommand(t *testing.T) {
	_, errOut, code := run(t, "replace", "--resume", "--group", "nosuch-group", "--dry-run")
	if code == ExitUsage {
		t.Errorf("'spotmax replace --resume --group G' is not a valid command line (exit %d): %s", code, errOut)
	}
}
