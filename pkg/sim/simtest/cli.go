package simtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/sim"
)

// AWSCLI returns the aws command to run: $SPOTMAX_AWS_CLI, else aws on PATH. Without one the
// test skips, unless SPOTMAX_REQUIRE_ASSETS=1 (CI) makes the missing CLI a failure.
func AWSCLI(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SPOTMAX_AWS_CLI"); p != "" {
		return p
	}
	p, err := exec.LookPath("aws")
	if err != nil {
		if os.Getenv("SPOTMAX_REQUIRE_ASSETS") == "1" {
			t.Fatal("the AWS CLI (aws) is not on PATH and SPOTMAX_REQUIRE_ASSETS=1: install the Debian package awscli")
		}
		t.Skip("the AWS CLI (aws) is not on PATH; install the Debian package awscli to run the AWS CLI conformance tests")
	}
	return p
}

// CLI is a simulated region with an aws command pointed at it: a second real client (botocore)
// for the simulator's wire shapes.
type CLI struct {
	*Env
	t   *testing.T
	bin string
	// Vars is the command's environment: the caller's without its AWS settings, plus dummy
	// credentials and the region. Tests may append (AWS_MAX_ATTEMPTS=2).
	Vars []string
}

// StartCLI serves a region with opts and returns the aws command for it; the test runs in
// parallel with others (the CLI takes about two seconds per call) and is skipped in -short mode
// unless SPOTMAX_REQUIRE_ASSETS=1.
func StartCLI(t *testing.T, opts sim.Options) *CLI {
	t.Helper()
	if testing.Short() && os.Getenv("SPOTMAX_REQUIRE_ASSETS") != "1" {
		t.Skip("the AWS CLI takes about two seconds per call; skipped in -short mode")
	}
	bin := AWSCLI(t)
	t.Parallel()
	env := Start(t, opts)
	dir := t.TempDir()
	// Keep the caller's PATH and HOME (pyenv shims need them) but none of their AWS settings.
	var vars []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			vars = append(vars, kv)
		}
	}
	vars = append(vars,
		"AWS_ACCESS_KEY_ID=AKIDSIMCLI",
		"AWS_SECRET_ACCESS_KEY=secret",
		"AWS_DEFAULT_REGION="+env.Region().Name(),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER=",
	)
	return &CLI{Env: env, t: t, bin: bin, Vars: vars}
}

// Run runs one aws command against the region; with out set it decodes the JSON output. A
// failure ends the test.
func (e *CLI) Run(out any, args ...string) {
	e.t.Helper()
	stdout, stderr, err := e.exec(args...)
	if err != nil {
		e.t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	if out != nil {
		if err := json.Unmarshal(stdout, out); err != nil {
			e.t.Fatalf("aws %s: decoding output: %v\n%s", strings.Join(args, " "), err, stdout)
		}
	}
}

// Fail runs an aws command that must fail and returns its error output.
func (e *CLI) Fail(args ...string) string {
	e.t.Helper()
	_, stderr, err := e.exec(args...)
	if err == nil {
		e.t.Fatalf("aws %s succeeded, want an error", strings.Join(args, " "))
	}
	return string(stderr)
}

func (e *CLI) exec(args ...string) (stdout, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	full := append([]string{"--endpoint-url", e.URL(), "--output", "json"}, args...)
	cmd := exec.CommandContext(ctx, e.bin, full...)
	cmd.Env = e.Vars
	var o, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &se
	err = cmd.Run()
	return o.Bytes(), se.Bytes(), err
}
