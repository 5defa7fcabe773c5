package imds_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/spotmax/spotmax/pkg/imds"
)

// fakeIMDS is an IMDSv2-only endpoint that counts TCP connections and token requests; chunked
// makes it answer documents without a Content-Length.
func fakeIMDS(t *testing.T, chunked bool) (*httptest.Server, func() (conns, tokens int)) {
	t.Helper()
	var mu sync.Mutex
	conns, tokens := 0, 0
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
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, func() (int, int) { mu.Lock(); defer mu.Unlock(); return conns, tokens }
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
