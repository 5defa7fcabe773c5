package agent

import (
	"io"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseArgsPrecedence(t *testing.T) {
	e := env(map[string]string{"SPOTMAX_CONSUL_MODE": "maintenance", "SPOTMAX_NOTICE_INTERVAL": "500ms",
		"SPOTMAX_HANDLE_REBALANCE": "true", "SPOTMAX_MOUNT_PATH": "/srv/data"})
	o, err := ParseArgs([]string{"--notice-interval", "100ms", "--mount-path=/data"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// Flags win over the environment, the environment over defaults.
	if o.NoticeInterval != 100*time.Millisecond || o.MountPath != "/data" || o.ConsulMode != "maintenance" ||
		!o.HandleRebalance || o.TagInterval != time.Second || o.LogFormat != "auto" || o.StateDir != "/run/spotmax-agent" {
		t.Errorf("ParseArgs = %+v", o)
	}
}

func TestParseArgsErrorsNameTheSetting(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"SPOTMAX_TAG_INTERVAL": "soon"}, `SPOTMAX_TAG_INTERVAL="soon": not a duration`},
		{nil, map[string]string{"SPOTMAX_HANDLE_REBALANCE": "yes please"}, `SPOTMAX_HANDLE_REBALANCE="yes please": not true or false`},
		{[]string{"--consul-mode", "drain"}, nil, `consul mode "drain"`},
		{[]string{"--mount-path", "data"}, nil, `mount path "data" is not absolute`},
		{[]string{"--log-format", "xml"}, nil, `--log-format "xml"`},
		{[]string{"--log-level", "loud"}, nil, `--log-level "loud"`},
		{[]string{"--notice-interval", "-1s"}, nil, "notice interval -1s is negative"},
		{[]string{"extra"}, nil, "unexpected arguments: extra"},
	} {
		_, err := ParseArgs(tc.args, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseArgs(%v, %v) error = %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestConfigLogHasNoSecrets(t *testing.T) {
	c, err := Config{ConsulToken: "s3cr3t-token", PreStopHook: "curl -H 'Authorization: x' ..."}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, a := range c.logAttrs() {
		b.WriteString(strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(fmtAny(a), "\n", " "), "\t", " ")) + " ")
	}
	if s := b.String(); strings.Contains(s, "s3cr3t") || strings.Contains(s, "Authorization") || !strings.Contains(s, "consul_token_set true") {
		t.Errorf("logged configuration: %s", s)
	}
}

func fmtAny(a any) string {
	switch v := a.(type) {
	case string:
		return v
	case bool:
		if v {
			return "true"
		}
		return "false"
	}
	return ""
}

func TestXenSuffix(t *testing.T) {
	for in, want := range map[string]string{"xvdf": "f", "sdf": "f", "xvdf1": "f", "xvdba": "ba", "nvme1n1": "", "/dev/sdf": ""} {
		if got := xenSuffix(in); got != want {
			t.Errorf("xenSuffix(%q) = %q, want %q", in, got, want)
		}
	}
}
