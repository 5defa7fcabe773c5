package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/spotmax/spotmax/pkg/iam"
)

func TestIAMPolicyPrintsTheRolesPolicy(t *testing.T) {
	out, errOut, code := run(t, "iam-policy", "--role", "agent", "--group", "web")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want, err := iam.For(iam.Agent, iam.Options{Group: "web"})
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := want.JSON()
	if out != string(wantJSON) {
		t.Errorf("iam-policy --role agent --group web printed:\n%s\nwant:\n%s", out, wantJSON)
	}
	if !strings.Contains(out, `"ec2:ResourceTag/spotmax:group": "web"`) {
		t.Errorf("--group web does not narrow the tag condition:\n%s", out)
	}

	// The default role is the controller; -o json prints the same document.
	out, _, code = run(t, "iam-policy", "-o", "json")
	var doc struct {
		Version   string
		Statement []struct{ Sid string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc.Version != "2012-10-17" || len(doc.Statement) < 10 {
		t.Fatalf("iam-policy -o json: exit %d, not the controller policy:\n%s", code, out)
	}
	if doc.Statement[0].Sid != "Describe" {
		t.Errorf("first statement %q, want Describe", doc.Statement[0].Sid)
	}
}

func TestIAMPolicyYAMLAndExplain(t *testing.T) {
	out, _, code := run(t, "iam-policy", "--role", "controller", "-o", "yaml")
	var doc map[string]any
	if code != 0 || yaml.Unmarshal([]byte(out), &doc) != nil || doc["Version"] != "2012-10-17" {
		t.Fatalf("-o yaml: exit %d, output:\n%s", code, out)
	}
	out, _, code = run(t, "iam-policy", "--role", "agent", "--explain")
	if code != 0 {
		t.Fatalf("--explain: exit %d", code)
	}
	for _, want := range []string{"ReportOnOwnInstance: ec2:CreateTags", "if aws:ARN StringEquals ${ec2:SourceInstanceARN}", "PublishMetrics"} {
		if !strings.Contains(out, want) {
			t.Errorf("--explain lacks %q:\n%s", want, out)
		}
	}
}

func TestIAMPolicyBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"iam-policy", "--role", "admin"}, `invalid --role: unknown IAM role "admin": want controller or agent`},
		{[]string{"iam-policy", "--partition", "aws-eu"}, `unknown AWS partition "aws-eu"`},
		{[]string{"iam-policy", "--group", "web*"}, `group "web*"`},
	} {
		_, errOut, code := run(t, c.args...)
		if code != ExitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errOut, ExitUsage, c.want)
		}
	}
}
