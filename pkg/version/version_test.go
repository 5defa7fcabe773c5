package version

import "testing"

// The link-time values win and the commit is shortened; without them the build's VCS stamp or
// "unknown" is shown, never an empty field.
func TestString(t *testing.T) {
	saved := [3]string{Version, commit, date}
	t.Cleanup(func() { Version, commit, date = saved[0], saved[1], saved[2] })

	Version, commit, date = "v1.2.3", "0123456789abcdef0123", "2026-01-01T00:00:00Z"
	if got, want := String(), "v1.2.3 (commit 0123456789ab, built 2026-01-01T00:00:00Z)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	commit, date = "", ""
	if Commit() == "" || Date() == "" {
		t.Errorf("Commit() %q, Date() %q: want the VCS stamp or unknown", Commit(), Date())
	}
}
