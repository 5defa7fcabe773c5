package sqs_test

import (
	"errors"
	"github.com/spotmax/spotmax/pkg/source"
	"github.com/spotmax/spotmax/pkg/source/sqs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bridgeSamples are the documented event shapes in testdata/eventbridge and what they parse to.
var bridgeSamples = map[string]source.Event{
	"spot-interruption-terminate.json": {Kind: source.KindInterruption, Instance: "i-0a1b2c3d4e5f60718",
		Time: bridgeTime("2026-03-04T10:15:30Z"), Deadline: bridgeTime("2026-03-04T10:17:30Z"), Detail: "terminate"},
	// Hibernation starts at once: no two minutes.
	"spot-interruption-hibernate.json": {Kind: source.KindInterruption, Instance: "i-0bbbbbbbbbbbbbbbb",
		Time: bridgeTime("2026-03-04T10:20:00Z"), Deadline: bridgeTime("2026-03-04T10:20:00Z"), Detail: "hibernate"},
	"rebalance-recommendation.json": {Kind: source.KindRebalance, Instance: "i-0a1b2c3d4e5f60718",
		Time: bridgeTime("2026-03-04T10:10:05Z")},
	"state-change-shutting-down.json": {Kind: source.KindStateChange, Instance: "i-0a1b2c3d4e5f60718",
		Time: bridgeTime("2026-03-04T10:17:31Z"), Detail: "shutting-down"},
	"launch-unsuccessful.json": {Kind: source.KindLaunchFailure, Group: "web", Time: bridgeTime("2026-03-04T10:18:02Z"),
		Detail: "There is no Spot capacity available that matches your request. Launching EC2 instance failed."},
}

// bridgeMalformed are the malformed messages and a word the error must contain.
var bridgeMalformed = map[string]string{
	"not-json.txt":           "decoding EventBridge event",
	"truncated.json":         "decoding EventBridge event",
	"no-instance-id.json":    "no instance-id",
	"bad-instance-id.json":   `"web-1" is not an EC2 instance id`,
	"bad-time.json":          "decoding EventBridge event",
	"no-time.json":           "no time",
	"detail-not-object.json": "detail is not an object",
	"unknown-action.json":    `unknown instance-action "explode"`,
	"unknown-state.json":     `unknown state "melting"`,
	"no-group.json":          "no valid AutoScalingGroupName",
	"wrong-type.json":        "decoding detail",
	"trailing-text.json":     "text after the JSON value",
	"no-envelope.json":       "version, source and detail-type are required",
}

func bridgeTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func readBridge(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "eventbridge", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseEventBridgeSamples(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "eventbridge", "*.json"))
	if len(files) != len(bridgeSamples) {
		t.Errorf("%d samples in testdata/eventbridge, %d expected: keep the table and the files in step", len(files), len(bridgeSamples))
	}
	for name, want := range bridgeSamples {
		got, err := sqs.ParseEventBridge(readBridge(t, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
}

func TestParseEventBridgeRejectsMalformed(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "eventbridge", "malformed", "*"))
	if len(files) != len(bridgeMalformed) {
		t.Errorf("%d files in testdata/eventbridge/malformed, %d expected", len(files), len(bridgeMalformed))
	}
	for name, want := range bridgeMalformed {
		_, err := sqs.ParseEventBridge(readBridge(t, filepath.Join("malformed", name)))
		if err == nil || errors.Is(err, sqs.ErrUnsupportedEvent) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want a malformed-message error with %q", name, err, want)
		}
	}
	for _, name := range []string{"launch-successful.json", "health-event.json"} {
		_, err := sqs.ParseEventBridge(readBridge(t, filepath.Join("unsupported", name)))
		if !errors.Is(err, sqs.ErrUnsupportedEvent) {
			t.Errorf("%s: err = %v, want ErrUnsupportedEvent", name, err)
		}
	}
}

// FuzzParseEventBridge checks that no message body makes the parser panic, and that what it
// accepts is an event the controller can act on.
func FuzzParseEventBridge(f *testing.F) {
	for _, dir := range []string{"", "malformed", "unsupported"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "eventbridge", dir, "*"))
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil { // directories fail and are skipped
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := sqs.ParseEventBridge(body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if e.Time.IsZero() || e.Time.Location() != time.UTC {
			t.Fatalf("accepted event without a UTC time: %+v", e)
		}
		switch e.Kind {
		case source.KindInterruption:
			if e.Deadline.Before(e.Time) || e.Deadline.Sub(e.Time) > sqs.InterruptionNotice || e.Detail == "" {
				t.Fatalf("interruption with deadline %v for time %v: %+v", e.Deadline, e.Time, e)
			}
			fallthrough
		case source.KindRebalance, source.KindStateChange:
			if !strings.HasPrefix(e.Instance, "i-") || e.Group != "" {
				t.Fatalf("instance event without an instance: %+v", e)
			}
		case source.KindLaunchFailure:
			if e.Group == "" {
				t.Fatalf("launch failure without a group: %+v", e)
			}
		default:
			t.Fatalf("accepted event of kind %q", e.Kind)
		}
		again, err := sqs.ParseEventBridge(body)
		if err != nil || again != e {
			t.Fatalf("parsing twice differs: %+v / %+v, %v", e, again, err)
		}
	})
}

// BenchmarkParseEventBridge parses the documented samples, one per iteration in turn.
func BenchmarkParseEventBridge(b *testing.B) {
	var bodies [][]byte
	for name := range bridgeSamples {
		bodies = append(bodies, readBridge(b, name))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := sqs.ParseEventBridge(bodies[i%len(bodies)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
