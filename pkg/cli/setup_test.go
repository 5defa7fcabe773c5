package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/spotmax/spotmax/pkg/eventsetup"
)

func TestSetupEventsDryRunThenApplyThenNothing(t *testing.T) {
	e := newTestEnv(t)
	r := e.Region()
	writes := func() int {
		n := 0
		for _, c := range r.Calls() {
			switch c.Action {
			case "sqs:CreateQueue", "sqs:SetQueueAttributes", "events:PutRule", "events:PutTargets":
				n += c.Count
			}
		}
		return n
	}

	out, errOut, code := run(t, "setup", "events", "--dry-run")
	if code != 0 {
		t.Fatalf("--dry-run: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"queue         spotmax-events", "rule          spotmax-events-spot-interruption", "create",
		"rule-target   spotmax-events-launch-unsuccessful/spotmax-queue", "dry run: 10 change(s) not made"} {
		if !strings.Contains(out, want) {
			t.Errorf("--dry-run output lacks %q:\n%s", want, out)
		}
	}
	if n := writes(); n != 0 {
		t.Errorf("--dry-run made %d mutating calls", n)
	}
	// The JSON shape of the plan is stable: scripts read it.
	out, _, code = run(t, "setup", "events", "--dry-run", "-o", "json")
	if code != 0 {
		t.Fatalf("--dry-run -o json: exit %d", code)
	}
	golden(t, "setup-events-dry-run.json", out)

	// Without a terminal and without --yes it refuses.
	_, errOut, code = run(t, "setup", "events")
	if code != ExitUsage || !strings.Contains(errOut, "pass --yes") {
		t.Errorf("without --yes: exit %d, %s", code, errOut)
	}

	out, errOut, code = run(t, "setup", "events", "--yes", "-o", "json")
	if code != 0 {
		t.Fatalf("--yes: exit %d: %s", code, errOut)
	}
	var res eventsetup.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if res.DryRun || !strings.HasSuffix(res.QueueURL, "/123456789012/spotmax-events") || len(res.RuleARNs) != 4 || len(res.Changed()) != 10 {
		t.Errorf("result %+v", res)
	}
	first := writes()
	if first != 10 {
		t.Errorf("setup made %d mutating calls, want 10 (queue, policy, 4 rules, 4 targets)", first)
	}

	out, errOut, code = run(t, "setup", "events", "--yes")
	if code != 0 {
		t.Fatalf("second run: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "already set up, nothing to change") || !strings.Contains(out, "queue URL: "+res.QueueURL) ||
		!strings.Contains(errOut, "spotmax run --queue-url "+res.QueueURL) {
		t.Errorf("second run:\nstdout: %s\nstderr: %s", out, errOut)
	}
	if n := writes(); n != first {
		t.Errorf("second run made %d mutating calls", n-first)
	}
}

func TestSetupEventsRejectsBadQueueName(t *testing.T) {
	_, errOut, code := run(t, "setup", "events", "--queue-name", "events.fifo", "--dry-run")
	if code != ExitUsage || !strings.Contains(errOut, `invalid --queue-name: queue name "events.fifo"`) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}
