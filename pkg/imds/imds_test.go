package imds_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/imds"
	"github.com/spotmax/spotmax/pkg/imds/imdstest"
)

// These tests run against amazon-ec2-metadata-mock, AWS's IMDS emulator.

func never(o imdstest.Options) imdstest.Options {
	if o.SpotDelay == 0 {
		o.SpotDelay = imdstest.Never
	}
	if o.RebalanceDelay == 0 {
		o.RebalanceDelay = imdstest.Never
	}
	if o.ASGTerminationDelay == 0 {
		o.ASGTerminationDelay = imdstest.Never
	}
	return o
}

func TestClientV2Only(t *testing.T) {
	m := imdstest.Start(t, never(imdstest.Options{V2Only: true,
		Tags: map[string]string{groupconfig.TagGroup: "web", groupconfig.TagPersistenceMountPath: "/data"}}))
	// The emulator really refuses IMDSv1.
	resp, err := http.Get(m.URL + "/latest/meta-data/instance-id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("IMDSv1 request to the IMDSv2-only emulator: status %d, want 401", resp.StatusCode)
	}

	ctx := context.Background()
	c := imds.New(imds.Options{Endpoint: m.URL})
	id, err := c.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id.InstanceID != "i-1234567890abcdef0" || id.Region != "us-east-1" || id.AZ != "us-east-1f" || id.PrivateIP != "10.0.7.10" {
		t.Errorf("Identity = %+v", id)
	}
	if v, err := c.Tag(ctx, groupconfig.TagGroup); err != nil || v != "web" {
		t.Errorf("Tag(%s) = %q, %v; want web", groupconfig.TagGroup, v, err)
	}
	if _, err := c.Tag(ctx, groupconfig.StateVolume); !errors.Is(err, imds.ErrNotFound) {
		t.Errorf("Tag(absent) error = %v, want ErrNotFound", err)
	}
	tags, err := c.Tags(ctx)
	if err != nil || len(tags) != 2 || tags[groupconfig.TagPersistenceMountPath] != "/data" {
		t.Errorf("Tags = %v, %v", tags, err)
	}
	if _, err := c.Get(ctx, "spot/instance-action"); !errors.Is(err, imds.ErrNotFound) {
		t.Errorf("spot/instance-action before any notice: error = %v, want ErrNotFound", err)
	}
}

func TestClientNeverFallsBackToV1(t *testing.T) {
	// Endpoints without a usable token API (not there, or refusing): what an old proxy, or a
	// hop limit of 1 inside a container, looks like. An IMDSv1 client would read on without a
	// token; this one must not send a single tokenless read.
	for _, tokenStatus := range []int{http.StatusNotFound, http.StatusForbidden} {
		var mu sync.Mutex
		tokenless := 0
		v1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
				w.WriteHeader(tokenStatus)
				return
			}
			if r.Method == http.MethodGet && r.Header.Get("X-aws-ec2-metadata-token") == "" {
				mu.Lock()
				tokenless++
				mu.Unlock()
			}
			if r.URL.Path == "/latest/meta-data/instance-id" {
				_, _ = w.Write([]byte("i-0123456789abcdef0"))
				return
			}
			http.NotFound(w, r)
		}))
		ctx := context.Background()
		c := imds.New(imds.Options{Endpoint: v1.URL})
		if _, err := c.Get(ctx, "instance-id"); err == nil {
			t.Errorf("token API answering %d: the client read instance-id without a session token", tokenStatus)
		}
		if _, err := c.Identity(ctx); err == nil {
			t.Errorf("token API answering %d: the client read its identity without a session token", tokenStatus)
		}
		v1.Close()
		mu.Lock()
		if tokenless != 0 {
			t.Errorf("token API answering %d: %d IMDSv1 (tokenless) reads sent, want none", tokenStatus, tokenless)
		}
		mu.Unlock()
	}
}

func TestIdentityRejectsAnInvalidInstanceID(t *testing.T) {
	for id, valid := range map[string]bool{
		"i-0123456789abcdef0": true, "i-0123abcd": true, "../../etc/cron.d/x": false, "i-0123456789ABCDEF0": false,
		"i-0123456789abcdef": false, "i-0123456789abcdef0\n": false, "i-0123abcd/..": false, " i-0123abcd": false,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
				w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
				_, _ = w.Write([]byte("token"))
			case r.Header.Get("X-aws-ec2-metadata-token") != "token":
				w.WriteHeader(http.StatusUnauthorized)
			case r.URL.Path == "/latest/dynamic/instance-identity/document":
				_ = json.NewEncoder(w).Encode(map[string]string{"instanceId": id, "region": "us-east-1", "availabilityZone": "us-east-1a"})
			default:
				http.NotFound(w, r)
			}
		}))
		got, err := imds.New(imds.Options{Endpoint: srv.URL}).Identity(context.Background())
		srv.Close()
		if valid != imds.ValidInstanceID(id) {
			t.Errorf("ValidInstanceID(%q) = %v, want %v", id, !valid, valid)
		}
		switch {
		case valid && (err != nil || got.InstanceID != id):
			t.Errorf("Identity with instanceId %q = %+v, %v; want it accepted", id, got, err)
		case !valid && (!errors.Is(err, imds.ErrInvalidInstanceID) || !strings.Contains(err.Error(), strconv.Quote(id)) || got.InstanceID != ""):
			t.Errorf("Identity with instanceId %q = %+v, %v; want ErrInvalidInstanceID naming the value", id, got, err)
		}
	}
}

func TestTagsUnavailable(t *testing.T) {
	m := imdstest.Start(t, never(imdstest.Options{V2Only: true}))
	c := imds.New(imds.Options{Endpoint: m.URL})
	if _, err := c.Tag(context.Background(), groupconfig.TagGroup); !errors.Is(err, imds.ErrTagsUnavailable) {
		t.Errorf("Tag with no tags in IMDS: error = %v, want ErrTagsUnavailable", err)
	}
}

// collect runs a watcher and gathers its notices.
type collect struct {
	mu      sync.Mutex
	notices []imds.Notice
	logs    bytes.Buffer
	logMu   sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
}

type lockedWriter struct{ c *collect }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.logMu.Lock()
	defer w.c.logMu.Unlock()
	return w.c.logs.Write(p)
}

func watch(t *testing.T, sources ...imds.Source) *collect {
	t.Helper()
	c := &collect{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	out := make(chan imds.Notice)
	w := &imds.Watcher{Sources: sources, Log: slog.New(slog.NewTextHandler(lockedWriter{c}, nil)), ErrorEvery: time.Hour}
	go func() {
		defer close(c.done)
		_ = w.Run(ctx, out)
	}()
	go func() {
		for n := range out {
			c.mu.Lock()
			c.notices = append(c.notices, n)
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-c.done; close(out) })
	return c
}

func (c *collect) wait(t *testing.T, n int, within time.Duration) []imds.Notice {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		got := append([]imds.Notice(nil), c.notices...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.logMu.Lock()
	defer c.logMu.Unlock()
	t.Fatalf("no %d notices within %v; watcher log:\n%s", n, within, c.logs.String())
	return nil
}

func (c *collect) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.notices)
}

func (c *collect) log() string {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	return c.logs.String()
}

func TestWatchSpotInterruptionAfterDelay(t *testing.T) {
	start := time.Now()
	m := imdstest.Start(t, never(imdstest.Options{V2Only: true, SpotDelay: 2}))
	c := imds.New(imds.Options{Endpoint: m.URL})
	col := watch(t, c.SpotSource(50*time.Millisecond), c.LifecycleSource(50*time.Millisecond))
	got := col.wait(t, 1, 10*time.Second)
	n := got[0]
	if n.Kind != imds.KindSpotInterruption || n.Action != "terminate" {
		t.Fatalf("notice = %+v, want a spot interruption (terminate)", n)
	}
	if n.Seen.Before(start.Add(time.Second)) {
		t.Errorf("notice seen at %v, before the emulator's 2 s delay (started %v)", n.Seen, start)
	}
	// The action is about two minutes after the notice.
	if d := n.Time.Sub(n.Seen); d < 100*time.Second || d > 130*time.Second {
		t.Errorf("interruption time %v is %v after the notice, want about 2 minutes", n.Time, d)
	}
	time.Sleep(300 * time.Millisecond)
	if k := col.count(); k != 1 {
		t.Errorf("the same notice was reported %d times, want once", k)
	}
}

func TestWatchRebalanceAndASGTermination(t *testing.T) {
	m := imdstest.Start(t, never(imdstest.Options{V2Only: true, RebalanceDelay: 1, ASGTerminationDelay: 2}))
	c := imds.New(imds.Options{Endpoint: m.URL})
	col := watch(t, c.SpotSource(50*time.Millisecond), c.RebalanceSource(50*time.Millisecond), c.LifecycleSource(50*time.Millisecond))
	got := col.wait(t, 2, 10*time.Second)
	if got[0].Kind != imds.KindRebalance || got[0].Time.IsZero() {
		t.Errorf("first notice = %+v, want the rebalance recommendation with its notice time", got[0])
	}
	if got[1].Kind != imds.KindASGTermination || got[1].Action != "Terminated" {
		t.Errorf("second notice = %+v, want the group's termination (target-lifecycle-state Terminated)", got[1])
	}
	time.Sleep(300 * time.Millisecond)
	if k := col.count(); k != 2 {
		t.Errorf("%d notices, want exactly 2 (no spot interruption, no repeats)", k)
	}
}

func TestWatchRetiringTag(t *testing.T) {
	m := imdstest.Start(t, never(imdstest.Options{V2Only: true,
		Tags: map[string]string{groupconfig.TagGroup: "web", groupconfig.StateRetiring: "lifetime"}}))
	c := imds.New(imds.Options{Endpoint: m.URL})
	col := watch(t, c.TagSource(groupconfig.StateRetiring, imds.KindRetiring, 50*time.Millisecond))
	got := col.wait(t, 1, 5*time.Second)
	if got[0].Kind != imds.KindRetiring || got[0].Action != "lifetime" {
		t.Errorf("notice = %+v, want retiring (lifetime)", got[0])
	}
}

func TestTokenRefusedAfterRestartIsRenewed(t *testing.T) {
	m := imdstest.Start(t, never(imdstest.Options{V2Only: true}))
	ctx := context.Background()
	c := imds.New(imds.Options{Endpoint: m.URL})
	if _, err := c.Get(ctx, "instance-id"); err != nil {
		t.Fatal(err)
	}
	// The restarted emulator knows none of the tokens it gave out: the client's cached token
	// is refused with 401, as an expired one is, and one call must get a new one and succeed.
	m.Restart(nil)
	if v, err := c.Get(ctx, "instance-id"); err != nil || v != "i-1234567890abcdef0" {
		t.Fatalf("first call after the token became invalid: %q, %v; want it renewed transparently", v, err)
	}
}

func TestWatchSurvivesIMDSDown(t *testing.T) {
	m := imdstest.Start(t, never(imdstest.Options{V2Only: true}))
	c := imds.New(imds.Options{Endpoint: m.URL})
	col := watch(t, c.SpotSource(50*time.Millisecond))
	time.Sleep(200 * time.Millisecond)
	m.Stop()
	time.Sleep(1500 * time.Millisecond)
	// IMDS comes back, with a notice already showing.
	m.Restart(func(o *imdstest.Options) { o.SpotDelay = 0 })
	got := col.wait(t, 1, 10*time.Second)
	if got[0].Kind != imds.KindSpotInterruption {
		t.Errorf("notice = %+v, want the spot interruption", got[0])
	}
	logs := col.log()
	if !strings.Contains(logs, "polling instance metadata failed") || !strings.Contains(logs, "polling instance metadata recovered") {
		t.Errorf("the outage was not logged as failure then recovery:\n%s", logs)
	}
	if n := strings.Count(logs, "polling instance metadata failed"); n != 1 {
		t.Errorf("the outage was logged %d times, want once (rate-limited):\n%s", n, logs)
	}
}

// TestWatchPrefetchesSourcesDueTogether: on a tick where several sources with a Path are due,
// the watcher prefetches exactly those paths before polling them; on the others, nothing.
func TestWatchPrefetchesSourcesDueTogether(t *testing.T) {
	m := imdstest.Start(t, never(imdstest.Options{V2Only: true}))
	c := imds.New(imds.Options{Endpoint: m.URL})
	var mu sync.Mutex
	var calls [][]string
	checks := 0
	pathless := imds.Source{Name: "no path", Every: 150 * time.Millisecond, Check: func(context.Context) (*imds.Notice, error) {
		mu.Lock()
		checks++
		mu.Unlock()
		return nil, nil
	}}
	w := &imds.Watcher{Sources: []imds.Source{c.SpotSource(50 * time.Millisecond), c.RebalanceSource(150 * time.Millisecond), pathless},
		Prefetch: func(ctx context.Context, paths []string) func() {
			mu.Lock()
			calls = append(calls, append([]string(nil), paths...))
			mu.Unlock()
			return c.Prefetch(ctx, paths)
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	if err := w.Run(ctx, make(chan imds.Notice)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The deadline can end Run between a tick's prefetch and its last source's poll: that tick
	// has a prefetch without the poll.
	if len(calls) < 3 || len(calls) != checks && len(calls) != checks+1 {
		t.Fatalf("%d prefetches for %d polls of the 150 ms sources, want one each (and at least 3)", len(calls), checks)
	}
	for _, p := range calls {
		if strings.Join(p, ",") != "spot/instance-action,events/recommendations/rebalance" {
			t.Errorf("prefetched %v, want the spot and rebalance paths (the sources due, with a path)", p)
		}
	}
}
