package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemo plays the whole demo faster and checks that it tells the story and that its
// invariants hold.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), &out, Options{Scale: 120}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"spot interruption notice", "on-demand stand-in", "swapped back to spot", "(lifetime)",
		"mounted at /data", "deregistered", "drained", "all invariants hold", "% saved"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
