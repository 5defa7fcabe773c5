package groupconfig

import (
	"strings"
	"testing"
	"time"
)

func TestRelayedNoticeRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		n         RelayedNotice
		want      string
		rebalance bool
	}{
		{RelayedNotice{Action: "terminate", Time: at}, "terminate@2026-01-02T02:04:05Z", false},
		{RelayedNotice{Action: RelayRebalance, Time: at}, "rebalance@2026-01-02T02:04:05Z", true},
		{RelayedNotice{Action: "asg-termination:Terminated", Time: at}, "asg-termination:Terminated@2026-01-02T02:04:05Z", false},
	} {
		got := tc.n.String()
		if got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.n, got, tc.want)
		}
		back, err := ParseRelayedNotice(got)
		if err != nil || back.Action != tc.n.Action || !back.Time.Equal(at) || back.Rebalance() != tc.rebalance {
			t.Errorf("ParseRelayedNotice(%q) = %+v, %v", got, back, err)
		}
	}
	for _, bad := range []string{"", "terminate", "@2026-01-02T03:04:05Z", "stop@tomorrow"} {
		if _, err := ParseRelayedNotice(bad); err == nil || !strings.Contains(err.Error(), StateNotice) {
			t.Errorf("ParseRelayedNotice(%q) = %v, want an error naming %s", bad, err, StateNotice)
		}
	}
}
