package groupconfig

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite docs/tags.md from Markdown()")

const docsPath = "../../docs/tags.md"

const docsHeader = `# spotmax tag reference

All of a group's spotmax configuration lives in its Auto Scaling group tags. This table is
generated from the tag schema (pkg/groupconfig); ` + "`go test ./pkg/groupconfig -update-docs`" + `
rewrites it, and a test fails when it falls out of date.

`

// TestDocsTagsUpToDate keeps docs/tags.md true to the schema.
func TestDocsTagsUpToDate(t *testing.T) {
	want := docsHeader + Markdown()
	if *updateDocs {
		if err := os.WriteFile(docsPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatalf("reading %s (go test ./pkg/groupconfig -update-docs writes it): %v", docsPath, err)
	}
	if strings.TrimSpace(string(got)) != strings.TrimSpace(want) {
		t.Errorf("%s is out of date: run go test ./pkg/groupconfig -update-docs", docsPath)
	}
}
