package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
)

func TestVolumesListsThePoolAndRefusesBadInput(t *testing.T) {
	e := newTestEnv(t)
	e.group(t, "web", 2, map[string]string{groupconfig.TagGroup: "web", groupconfig.TagPersistenceDev: "/dev/sdf"})
	if _, errOut, code := run(t, "run", "--once", "--no-cloudwatch", "--poll-interval", "10ms"); code != 0 {
		t.Fatalf("run --once: exit %d\n%s", code, errOut)
	}
	e.Region().Advance(5 * time.Second) // past EC2's tag visibility: the pool is listed by its tag
	out, errOut, code := run(t, "volumes")
	if code != 0 {
		t.Fatalf("volumes: exit %d\n%s", code, errOut)
	}
	if n := strings.Count(out, " attached "); n != 2 || !strings.HasPrefix(out, "VOLUME") || !strings.Contains(out, "/dev/sdf") {
		t.Errorf("volumes table: %d attached rows, want 2:\n%s", n, out)
	}
	out, _, code = run(t, "volumes", "-o", "json")
	var got volumesJSON
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
		t.Fatalf("volumes -o json: exit %d, %v\n%s", code, err, out)
	}
	total := 0
	for k, n := range got.Summary {
		if !strings.HasPrefix(k, "web/us-east-1") || !strings.HasSuffix(k, "/"+string(replace.PoolAttached)) {
			t.Errorf("summary key %q, want web/<az>/attached", k)
		}
		total += n
	}
	if total != 2 || len(got.Volumes) != 2 {
		t.Errorf("summary counts %d, %d volumes; want 2", total, len(got.Volumes))
	}
	if out, _, _ := run(t, "volumes", "--az", "us-east-1z"); !strings.Contains(out, "no data volumes of group - in AZ us-east-1z") {
		t.Errorf("an empty filter says %q", out)
	}
	if _, errOut, code := run(t, "volumes", "delete", "vol-xyz", "--yes"); code != ExitUsage || !strings.Contains(errOut, `"vol-xyz" is not an EBS volume id`) {
		t.Errorf("delete of a bad id: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := run(t, "volumes", "adopt", "vol-0123456789abcdef0", "web"); code != ExitUsage || !strings.Contains(errOut, `"web" is not an EC2 instance id`) {
		t.Errorf("adopt into a bad instance id: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := run(t, "volumes", "release", "vol-0123456789abcdef0", "--yes"); code != ExitNotFound || !strings.Contains(errOut, "vol-0123456789abcdef0") {
		t.Errorf("release of an unknown volume: exit %d, want %d\n%s", code, ExitNotFound, errOut)
	}
	if _, errOut, code := run(t, "volumes", "delete", "vol-0123456789abcdef0"); code != ExitNotFound {
		t.Errorf("delete of an unknown volume: exit %d, want %d\n%s", code, ExitNotFound, errOut)
	}
}
