// Package golden is the tests' one golden-file helper: compare output with a file under
// testdata, or rewrite the file when the test runs with its package's -update flag.
package golden

import (
	"os"
	"testing"
)

// Check compares got with the golden file at path. With update it writes got to the file
// instead. rerun tells how to regenerate the file (e.g. "go test ./pkg/cli -update"); it is
// shown when the file is missing or differs.
func Check(t testing.TB, path string, got []byte, update bool, rerun string) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("writing golden file %s: %v", path, err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file %s (%s): %v", path, rerun, err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from golden file %s (%s):\ngot:\n%s\nwant:\n%s", t.Name(), path, rerun, got, want)
	}
}
