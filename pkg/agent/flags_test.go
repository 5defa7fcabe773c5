package agent

import (
	"github.com/spotmax/spotmax/pkg/imds"
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
		!o.HandleRebalance || o.TagInterval != imds.DefaultTagInterval || o.LogFormat != "auto" || o.StateDir != "/run/spotmax-agent" {
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

func TestParseArgsMetrics(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		env        map[string]string
		addr       string
		cloudwatch bool
	}{
		{"off by default", nil, nil, "", false},
		{"from the environment", nil, map[string]string{"SPOTMAX_METRICS_ADDR": ":9109", "SPOTMAX_CLOUDWATCH": "true"}, ":9109", true},
		{"flags win", []string{"--metrics-addr", "127.0.0.1:9200", "--cloudwatch=false"},
			map[string]string{"SPOTMAX_METRICS_ADDR": ":9109", "SPOTMAX_CLOUDWATCH": "1"}, "127.0.0.1:9200", false},
		{"flags alone", []string{"--metrics-addr=[::1]:0", "--cloudwatch"}, nil, "[::1]:0", true},
	} {
		o, err := ParseArgs(tc.args, env(tc.env), io.Discard)
		if err != nil {
			t.Errorf("%s: ParseArgs(%v, %v): %v", tc.name, tc.args, tc.env, err)
			continue
		}
		if o.MetricsAddr != tc.addr || o.CloudWatch != tc.cloudwatch {
			t.Errorf("%s: ParseArgs(%v, %v) = metrics address %q, cloudwatch %v; want %q, %v",
				tc.name, tc.args, tc.env, o.MetricsAddr, o.CloudWatch, tc.addr, tc.cloudwatch)
		}
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--metrics-addr", "9109"}, nil, `metrics address "9109": want host:port`},
		{nil, map[string]string{"SPOTMAX_METRICS_ADDR": "localhost"}, `metrics address "localhost": want host:port`},
		{nil, map[string]string{"SPOTMAX_CLOUDWATCH": "sometimes"}, `SPOTMAX_CLOUDWATCH="sometimes": not true or false`},
	} {
		_, err := ParseArgs(tc.args, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseArgs(%v, %v) error = %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestConfigLogShowsMetrics(t *testing.T) {
	c, err := Config{MetricsAddr: ":9109", CloudWatch: true}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	attrs := c.logAttrs()
	got := map[string]any{}
	for i := 0; i+1 < len(attrs); i += 2 {
		got[attrs[i].(string)] = attrs[i+1]
	}
	if got["metrics_addr"] != ":9109" || got["cloudwatch"] != true {
		t.Errorf("logged configuration: metrics_addr=%v cloudwatch=%v, want :9109 true", got["metrics_addr"], got["cloudwatch"])
	}
}

func TestParseArgsRemovedSettings(t *testing.T) {
	// IMDSv1 is gone: asking for it is an error that says so, from the command line or the
	// environment file.
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--imds-v1-fallback"}, nil},
		{nil, map[string]string{"SPOTMAX_IMDS_V1_FALLBACK": "true"}},
	} {
		_, err := ParseArgs(tc.args, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "IMDSv2 session tokens only") {
			t.Errorf("ParseArgs(%v, %v) error = %v, want the IMDSv1 fallback refused", tc.args, tc.env, err)
		}
	}
	// Never guessing a device is no longer an option: the old flag still parses, and changes nothing.
	if _, err := ParseArgs([]string{"--no-xen-fallback", "--imds-v1-fallback=false"}, env(map[string]string{"SPOTMAX_NO_XEN_FALLBACK": "true"}), io.Discard); err != nil {
		t.Errorf("old command line: %v", err)
	}
}
