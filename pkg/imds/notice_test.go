package imds

import (
	"strings"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

func TestParseInstanceAction(t *testing.T) {
	for _, tc := range []struct {
		doc, action, time, err string
	}{
		{`{"action": "terminate", "time": "2017-09-18T08:22:00Z"}`, "terminate", "2017-09-18T08:22:00Z", ""},
		{"{\n\t\"action\": \"stop\",\n\t\"time\": \"2026-11-26T17:50:28Z\"\n}", "stop", "2026-11-26T17:50:28Z", ""},
		{`{"action":"hibernate","time":"2020-01-01T10:00:00+02:00"}`, "hibernate", "2020-01-01T08:00:00Z", ""},
		{`{"action":"reboot","time":"2020-01-01T10:00:00Z"}`, "", "", "action must be terminate, stop or hibernate"},
		{`{"time":"2020-01-01T10:00:00Z"}`, "", "", "action must be"},
		{`{"action":"stop"}`, "", "", "no time"},
		{`{"action":"stop","time":"soon"}`, "", "", "bad time"},
		{`<html>404 - Not Found</html>`, "", "", "parsing spot/instance-action"},
		{strings.Repeat(" ", maxDoc+1), "", "", "too long"},
	} {
		action, at, err := ParseInstanceAction([]byte(tc.doc))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseInstanceAction(%q) error = %v, want %q", tc.doc, err, tc.err)
			}
			continue
		}
		if err != nil || action != tc.action || at.Format(time.RFC3339) != tc.time {
			t.Errorf("ParseInstanceAction(%q) = %q, %s, %v; want %q, %s", tc.doc, action, at.Format(time.RFC3339), err, tc.action, tc.time)
		}
	}
}

func TestParseRebalanceAndLifecycle(t *testing.T) {
	at, err := ParseRebalance([]byte(`{"noticeTime": "2020-10-27T08:22:00Z"}`))
	if err != nil || at.Format(time.RFC3339) != "2020-10-27T08:22:00Z" {
		t.Errorf("ParseRebalance = %v, %v", at, err)
	}
	for _, bad := range []string{`{}`, `{"noticeTime":"x"}`, `[]`, ``} {
		if _, err := ParseRebalance([]byte(bad)); err == nil {
			t.Errorf("ParseRebalance(%q) accepted it", bad)
		}
	}
	for doc, want := range map[string]bool{"InService": false, "Terminated": true, "Terminated\n": true, "Warmed:Stopped": false, "Detached": false} {
		_, term, err := ParseLifecycleState([]byte(doc))
		if err != nil || term != want {
			t.Errorf("ParseLifecycleState(%q) = %v, %v; want %v", doc, term, err, want)
		}
	}
	if _, _, err := ParseLifecycleState([]byte("<html>")); err == nil {
		t.Error("ParseLifecycleState accepted an HTML page")
	}
}

func TestRelay(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		n    Notice
		want string
	}{
		{Notice{Kind: KindSpotInterruption, Action: "terminate", Time: at}, "terminate@2026-01-02T03:04:05Z"},
		{Notice{Kind: KindRebalance, Action: "rebalance", Time: at}, "rebalance@2026-01-02T03:04:05Z"},
		{Notice{Kind: KindASGTermination, Action: "Terminated", Seen: at}, "asg-termination:Terminated@2026-01-02T03:04:05Z"},
	} {
		got := tc.n.Relay().String()
		if got != tc.want {
			t.Errorf("Relay(%+v) = %q, want %q", tc.n, got, tc.want)
		}
		if back, err := groupconfig.ParseRelayedNotice(got); err != nil || !back.Time.Equal(at) {
			t.Errorf("ParseRelayedNotice(%q) = %v, %v", got, back, err)
		}
	}
}

func FuzzParseNoticeDocuments(f *testing.F) {
	f.Add([]byte(`{"action": "terminate", "time": "2017-09-18T08:22:00Z"}`))
	f.Add([]byte(`{"noticeTime": "2020-10-27T08:22:00Z"}`))
	f.Add([]byte("Terminated"))
	f.Add([]byte(`{"action":"stop","time":"2020-01-01T10:00:00.123+05:30"}`))
	f.Add([]byte(`{"action":"stop","time":"0000-01-01T00:00:00+01:00"}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if action, at, err := ParseInstanceAction(doc); err == nil {
			if !spotActions[action] || at.Location() != time.UTC {
				t.Fatalf("ParseInstanceAction(%q) = %q, %v", doc, action, at)
			}
			n := Notice{Kind: KindSpotInterruption, Action: action, Time: at}
			back, err := groupconfig.ParseRelayedNotice(n.Relay().String())
			if err != nil || back.Action != action || !back.Time.Equal(at.Truncate(time.Second)) {
				t.Fatalf("relay round trip of %+v: %+v, %v", n, back, err)
			}
		}
		if at, err := ParseRebalance(doc); err == nil && at.Location() != time.UTC {
			t.Fatalf("ParseRebalance(%q) = %v, not UTC", doc, at)
		}
		if s, _, err := ParseLifecycleState(doc); err == nil && (s == "" || strings.ContainsAny(s, " \n")) {
			t.Fatalf("ParseLifecycleState(%q) = %q", doc, s)
		}
	})
}
