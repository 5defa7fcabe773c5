package imds

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// rawConn sends the lean path's GETs as HTTP/1.1 over one kept-alive TCP connection, written and
// read on the caller's goroutine. net/http hands every request to the connection's own reader
// and writer goroutines; at several polls a second those hand-offs were a large part of an idle
// agent's CPU. Anything it does not expect — an https or non-IP endpoint, a broken connection, a
// response without Content-Length — makes the caller use net/http for that request (get's ok is
// false), so it is an optimisation and never the only way.
//
// The connection is a sock (sock_linux.go): on Linux a blocking socket outside the runtime's
// network poller whose read waits for IMDS's answer in the kernel for up to fastWait, so a poll
// is one write and one read; IMDS answers in well under a millisecond. A slower answer is waited
// for under the request's deadline without holding up the rest of the agent.
type rawConn struct {
	hdr string // "Host: ...\r\n"

	mu   sync.Mutex
	host string // host:port; "" when the endpoint is not plain http or answered unexpectedly
	s    *sock
	req  []byte // the requests being written, reused
	// pre are prefetched answers by path, each taken by one get; noPipeline: the endpoint did
	// not answer pipelined requests.
	pre        map[string]preAnswer
	noPipeline bool
	one        [1]string   // get's one path
	got        []preAnswer // exchange's answers, reused
	buf        []byte      // the answer being read, reused
}

// fastWait bounds a wait for an answer (or for room to write) on the calling thread, outside the
// scheduler: the thread keeps its P meanwhile, so it is kept short.
const fastWait = 2 * time.Millisecond

// maxAnswer bounds an answer read this way (headers and body); a longer one goes to net/http.
const maxAnswer = 64 << 10

func newRawConn(base string) *rawConn {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Path != "" && u.Path != "/" {
		return &rawConn{}
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	return &rawConn{host: host, hdr: "Host: " + u.Host + "\r\n", buf: make([]byte, 0, 1024)}
}

// get sends GET path with one extra header and returns the status and body; ok is false when
// the request could not be made this way (the caller then uses net/http). An answer prefetched
// for path (prefetch) is taken instead, once.
func (r *rawConn) get(ctx context.Context, path, header, value string) (status int, body string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.pre[path]; ok {
		delete(r.pre, path)
		return a.status, a.body, true
	}
	if r.host == "" {
		return 0, "", false
	}
	for attempt := 0; attempt < 2; attempt++ {
		fresh, err := r.connect(ctx)
		if err != nil {
			return 0, "", false
		}
		r.one[0] = path
		got, err := r.exchange(ctx, r.one[:], header, value)
		if errors.Is(err, errProtocol) {
			r.host = "" // an endpoint that answers otherwise than IMDS does: net/http from now on
			return 0, "", false
		}
		if err == nil {
			return got[0].status, got[0].body, true
		}
		if fresh || ctx.Err() != nil {
			return 0, "", false
		}
		// A kept connection the server closed meanwhile: once more on a new one.
	}
	return 0, "", false
}

// prefetch sends GET for each of paths at once, one after the other on the connection (HTTP/1.1
// pipelining), and keeps the answers for the gets that follow (forget drops those not taken).
// The watcher does this on the ticks where several sources are due: their answers then wake the
// agent once rather than once each. An endpoint that does not answer pipelined requests in
// order on the connection is not asked that way again; its gets go one by one.
func (r *rawConn) prefetch(ctx context.Context, paths []string, header, value string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.host == "" || r.noPipeline || len(paths) == 0 {
		return
	}
	for attempt := 0; attempt < 2; attempt++ {
		fresh, err := r.connect(ctx)
		if err != nil {
			return
		}
		got, err := r.exchange(ctx, paths, header, value)
		// The answers read completely are this tick's, even when the rest did not come.
		if len(got) > 0 && r.pre == nil {
			r.pre = make(map[string]preAnswer, len(paths))
		}
		for i, a := range got {
			r.pre[paths[i]] = a
		}
		if err == nil {
			return
		}
		if len(got) == 0 && !fresh && errors.Is(err, errClosed) && ctx.Err() == nil {
			continue // a kept connection the server closed meanwhile
		}
		if ctx.Err() == nil {
			r.noPipeline = true
		}
		return
	}
}

// forget drops the prefetched answers that no get took.
func (r *rawConn) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.pre)
}

// connect makes sure there is a connection; fresh when it was made now.
func (r *rawConn) connect(ctx context.Context) (fresh bool, err error) {
	if r.s != nil {
		return false, nil
	}
	s, ok, err := dialSock(ctx, r.host)
	if !ok {
		r.host = "" // not an IP address: net/http from now on
		return false, errProtocol
	}
	if err != nil {
		return false, err
	}
	r.s = s
	return true, nil
}

func (r *rawConn) close() {
	r.s.close()
	r.s = nil
}

// preAnswer is one answer read: its status, and its body when the status is 200.
type preAnswer struct {
	status int
	body   string
}

// exchange writes GET for each of paths and reads their answers, in order. It returns the
// answers it read completely (all of them when err is nil), and closes the connection when it
// failed or the server said it closes it.
func (r *rawConn) exchange(ctx context.Context, paths []string, header, value string) (got []preAnswer, err error) {
	r.req = r.req[:0]
	for _, p := range paths {
		r.req = append(r.req, "GET "...)
		r.req = append(r.req, p...)
		r.req = append(r.req, " HTTP/1.1\r\n"...)
		r.req = append(r.req, r.hdr...)
		r.req = append(r.req, header...)
		r.req = append(r.req, ": "...)
		r.req = append(r.req, value...)
		r.req = append(r.req, "\r\nUser-Agent: spotmax-agent\r\n\r\n"...)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(requestTimeout)
	}
	if err := r.s.write(ctx, r.req, deadline); err != nil {
		r.close()
		return nil, err
	}
	r.buf = r.buf[:0]
	got = r.got[:0]
	defer func() { r.got = got[:0] }()
	keep := true
	for len(got) < len(paths) && err == nil {
		if !keep {
			err = errClosed // the server closes the connection after this answer
			break
		}
		var a answer
		if a, err = r.readAnswer(ctx, deadline); err == nil {
			pa := preAnswer{status: a.status}
			if a.status == 200 {
				pa.body = string(r.buf[a.start:a.end])
			}
			got = append(got, pa)
			keep = a.keep
			r.buf = r.buf[:copy(r.buf, r.buf[a.end:])]
		}
	}
	if err == nil && len(r.buf) > 0 {
		err = errProtocol // more answers than requests: not a conversation IMDS has
	}
	if cap(r.buf) > 4096 {
		r.buf = make([]byte, 0, 1024) // a large answer once is not kept for every poll
	}
	if err != nil || !keep {
		r.close()
	}
	return got, err
}

// readAnswer reads one answer into r.buf (which may hold the start of it already, and may end
// up holding the start of the next one).
func (r *rawConn) readAnswer(ctx context.Context, deadline time.Time) (answer, error) {
	var a answer
	for {
		if done, err := a.parse(r.buf); done || err != nil {
			return a, err
		}
		if len(r.buf) == cap(r.buf) {
			if cap(r.buf) >= maxAnswer {
				return a, errProtocol
			}
			r.buf = append(r.buf, make([]byte, cap(r.buf))...)[:len(r.buf)]
		}
		n, closed, err := r.s.read(ctx, r.buf[len(r.buf):cap(r.buf)], deadline)
		if err != nil {
			return a, err
		}
		if closed {
			return a, errClosed
		}
		r.buf = r.buf[:len(r.buf)+n]
	}
}

// answer is what parse found of an HTTP/1.x answer.
type answer struct {
	status     int
	keep       bool
	start, end int // body
}

// parse parses the answer read so far: done once all of it is there. Only what IMDS sends is
// accepted: a status line, headers with a Content-Length, no chunked encoding.
func (a *answer) parse(b []byte) (done bool, err error) {
	if a.end > 0 {
		return len(b) >= a.end, nil
	}
	head := bytes.Index(b, []byte("\r\n\r\n"))
	if head < 0 {
		return false, nil
	}
	lines := b[:head]
	line, rest, _ := bytes.Cut(lines, []byte("\r\n"))
	// HTTP/1.1 404 Not Found
	proto, st, _ := bytes.Cut(line, []byte(" "))
	code, _, _ := bytes.Cut(st, []byte(" "))
	if !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(code) != 3 {
		return false, errProtocol
	}
	status, err := strconv.Atoi(string(code))
	if err != nil {
		return false, errProtocol
	}
	length, keep := -1, string(proto) == "HTTP/1.1"
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		k, v, _ := bytes.Cut(h, []byte(":"))
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 || length > maxAnswer {
				return false, errProtocol
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			return false, errProtocol // chunked: let net/http read it
		case bytes.EqualFold(k, []byte("Connection")):
			keep = keep && !bytes.EqualFold(v, []byte("close"))
		}
	}
	if length < 0 {
		return false, errProtocol
	}
	a.status, a.keep, a.start, a.end = status, keep, head+4, head+4+length
	return len(b) >= a.end, nil
}

type protocolError struct{}

func (protocolError) Error() string { return "unexpected HTTP response from IMDS" }

var errProtocol error = protocolError{}

// errClosed: IMDS closed the kept connection (an idle timeout between polls).
var errClosed = errors.New("IMDS closed the connection")
