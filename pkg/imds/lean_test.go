package imds_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/imds"
)

// fakeIMDS is an IMDSv2-only endpoint that counts TCP connections and token requests; chunked
// makes it answer documents without a Content-Length.
func fakeIMDS(t *testing.T, chunked bool) (*httptest.Server, func() (conns, tokens int)) {
	t.Helper()
	var mu sync.Mutex
	tokens := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			mu.Lock()
			tokens++
			mu.Unlock()
			_, _ = w.Write([]byte("tok"))
		case r.Header.Get("X-aws-ec2-metadata-token") != "tok":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/latest/meta-data/spot/instance-action":
			http.NotFound(w, r)
		case r.URL.Path == "/latest/meta-data/instance-type":
			if chunked {
				w.(http.Flusher).Flush() // no Content-Length: chunked
			}
			_, _ = w.Write([]byte("m5.large"))
		default:
			http.NotFound(w, r)
		}
	}))
	conns := startCountingConns(t, srv)
	return srv, func() (int, int) { mu.Lock(); defer mu.Unlock(); return conns(), tokens }
}

// TestLeanPathReusesOneConnectionAndToken: a hundred polls are one TCP connection and one token.
func TestLeanPathReusesOneConnectionAndToken(t *testing.T) {
	srv, counts := fakeIMDS(t, false)
	c := imds.New(imds.Options{Endpoint: srv.URL})
	ctx := context.Background()
	for range 100 {
		if _, err := c.Get(ctx, "spot/instance-action"); !errors.Is(err, imds.ErrNotFound) {
			t.Fatalf("poll: %v, want ErrNotFound", err)
		}
	}
	if v, err := c.Get(ctx, "instance-type"); err != nil || v != "m5.large" {
		t.Fatalf("instance-type = %q, %v", v, err)
	}
	// One connection for the token (net/http) and one kept for the GETs.
	if conns, tokens := counts(); conns > 2 || tokens != 1 {
		t.Errorf("%d connections and %d tokens for 101 reads, want ≤ 2 and 1", conns, tokens)
	}
}

// TestLeanPathChunkedFallsBack: a response it does not read itself (chunked) is read through
// net/http instead.
func TestLeanPathChunkedFallsBack(t *testing.T) {
	srv, _ := fakeIMDS(t, true)
	c := imds.New(imds.Options{Endpoint: srv.URL})
	for range 3 {
		if v, err := c.Get(context.Background(), "instance-type"); err != nil || v != "m5.large" {
			t.Fatalf("instance-type = %q, %v", v, err)
		}
	}
}

// countingIMDS is an IMDSv2-only endpoint that counts the GETs of each path and the TCP
// connections; keepAlive false makes it close every connection after one answer, as a server
// that does not take pipelined requests does.
func countingIMDS(t *testing.T, keepAlive bool) (*httptest.Server, func(path string) int, func() int) {
	t.Helper()
	var mu sync.Mutex
	gets := map[string]int{}
	docs := map[string]string{"/latest/meta-data/instance-type": "m5.large", "/latest/meta-data/placement/region": "us-east-1"}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			_, _ = w.Write([]byte("tok"))
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token") != "tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		gets[r.URL.Path]++
		mu.Unlock()
		if d, ok := docs[r.URL.Path]; ok {
			_, _ = w.Write([]byte(d))
			return
		}
		http.NotFound(w, r)
	}))
	srv.Config.SetKeepAlivesEnabled(keepAlive)
	conns := startCountingConns(t, srv)
	return srv, func(p string) int { mu.Lock(); defer mu.Unlock(); return gets["/latest/meta-data/"+p] }, conns
}

// TestPrefetchServesGetsFromOneExchange: the documents prefetched together are each read from
// IMDS once, the Gets that follow take those answers (404s included), and what no Get took is
// dropped by done: a later Get asks IMDS again.
func TestPrefetchServesGetsFromOneExchange(t *testing.T) {
	srv, gets, conns := countingIMDS(t, true)
	c := imds.New(imds.Options{Endpoint: srv.URL})
	ctx := context.Background()
	paths := []string{"spot/instance-action", "instance-type", "placement/region"}
	for round := 1; round <= 3; round++ {
		done := c.Prefetch(ctx, paths)
		if _, err := c.Get(ctx, "spot/instance-action"); !errors.Is(err, imds.ErrNotFound) {
			t.Fatalf("round %d: spot/instance-action: %v, want ErrNotFound", round, err)
		}
		if v, err := c.Get(ctx, "instance-type"); err != nil || v != "m5.large" {
			t.Fatalf("round %d: instance-type = %q, %v", round, v, err)
		}
		done() // placement/region was not taken
		for _, p := range paths {
			if n := gets(p); n != round {
				t.Errorf("round %d: %s read %d times from IMDS, want %d (once a round)", round, p, n, round)
			}
		}
	}
	if v, err := c.Get(ctx, "placement/region"); err != nil || v != "us-east-1" {
		t.Fatalf("placement/region after done = %q, %v", v, err)
	}
	if n := gets("placement/region"); n != 4 {
		t.Errorf("placement/region read %d times, want 4: a dropped prefetch must not answer a later Get", n)
	}
	// The token's connection (net/http) and one kept for the pipelined GETs.
	if n := conns(); n > 2 {
		t.Errorf("%d connections, want ≤ 2", n)
	}
}

// TestPrefetchWithoutPipeliningFallsBack: an endpoint that closes the connection after each
// answer gets the documents one by one, with the same answers, and is not asked pipelined again.
func TestPrefetchWithoutPipeliningFallsBack(t *testing.T) {
	srv, gets, conns := countingIMDS(t, false)
	c := imds.New(imds.Options{Endpoint: srv.URL})
	ctx := context.Background()
	paths := []string{"instance-type", "placement/region"}
	for round := range 3 {
		done := c.Prefetch(ctx, paths)
		if v, err := c.Get(ctx, "instance-type"); err != nil || v != "m5.large" {
			t.Fatalf("round %d: instance-type = %q, %v", round, v, err)
		}
		if v, err := c.Get(ctx, "placement/region"); err != nil || v != "us-east-1" {
			t.Fatalf("round %d: placement/region = %q, %v", round, v, err)
		}
		done()
	}
	// Round 0's prefetch got the first answer, which its Get took, then the connection closed:
	// the second Get asked on a new one. Rounds 1 and 2 did not pipeline: one GET per Get.
	if a, b := gets("instance-type"), gets("placement/region"); a != 3 || b != 3 {
		t.Errorf("instance-type read %d times and placement/region %d, want 3 each", a, b)
	}
	// One connection per answer, plus the token's: a closed connection was not written to and
	// retried behind the test's back.
	if n := conns(); n != 1+6 {
		t.Errorf("%d connections, want %d", n, 1+6)
	}
}

// TestLeanPathSlowAndStalledAnswers: an answer slower than the quick wait on the polling thread
// is still read, on the same kept connection; an IMDS that does not answer ends the Get at the
// caller's deadline, and meanwhile the rest of the program runs (the wait does not hold the
// runtime).
func TestLeanPathSlowAndStalledAnswers(t *testing.T) {
	var mu sync.Mutex
	delay := 30 * time.Millisecond
	stall := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			_, _ = w.Write([]byte("tok"))
			return
		}
		mu.Lock()
		d := delay
		mu.Unlock()
		if d < 0 {
			<-stall
		}
		time.Sleep(d)
		_, _ = w.Write([]byte("m5.large"))
	}))
	conns := startCountingConns(t, srv)
	t.Cleanup(func() { close(stall) }) // before the server's Close (cleanups run last first)
	c := imds.New(imds.Options{Endpoint: srv.URL})
	ctx := context.Background()
	for i := range 3 {
		if v, err := c.Get(ctx, "instance-type"); err != nil || v != "m5.large" {
			t.Fatalf("slow answer %d: %q, %v", i, v, err)
		}
	}
	if n := conns(); n > 2 {
		t.Errorf("%d connections for a token and three slow answers, want ≤ 2", n)
	}
	mu.Lock()
	delay = -1
	mu.Unlock()

	// One P, as the agent's unit runs it: a wait that held it would stop the other goroutine.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var ticks atomic.Int32
	go func() {
		for range 10 {
			time.Sleep(10 * time.Millisecond)
			ticks.Add(1)
		}
	}()
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Get(dctx, "instance-type")
	took, ticked := time.Since(start), ticks.Load()
	if err == nil {
		t.Fatal("a stalled IMDS answered")
	}
	if took > 1500*time.Millisecond {
		t.Errorf("a stalled Get took %v, want about its 300 ms deadline", took)
	}
	if ticked < 5 {
		t.Errorf("another goroutine ticked %d times of 10 (every 10 ms) while the Get waited 300 ms: the wait held up the program", ticked)
	}
}

// startCountingConns starts srv, closed when the test ends, and returns the number of TCP
// connections it has accepted so far.
func startCountingConns(t *testing.T, srv *httptest.Server) func() int {
	t.Helper()
	var n atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return func() int { return int(n.Load()) }
}
