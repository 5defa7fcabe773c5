package imds

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// rawConn sends the lean path's GETs as HTTP/1.1 over one kept-alive TCP connection, written and
// read on the caller's goroutine. net/http hands every request to the connection's own reader
// and writer goroutines; at several polls a second those hand-offs were a large part of an idle
// agent's CPU. Anything it does not expect — an https or non-IP endpoint, a broken connection, a
// response without Content-Length — makes the caller use net/http for that request (get's ok is
// false), so it is an optimisation and never the only way.
//
// It also keeps the poll off the Go scheduler where it can: the request is written and the
// answer read with direct system calls on the socket (syscall.RawConn), and the wait for the
// answer is first a short blocking ppoll on the calling thread (fastWait, fastwait_linux.go)
// rather than parking the goroutine in the runtime's network poller. IMDS answers in well under
// a millisecond; parking and being woken by the poller cost an idle agent more CPU than the
// request itself (docs/benchmarks.md, issue 16). An answer slower than fastWait is waited for
// in the poller as before, under the request's deadline.
type rawConn struct {
	hdr string // "Host: ...\r\n"

	mu   sync.Mutex
	host string // host:port; "" when the endpoint is not plain http or answered unexpectedly
	conn *net.TCPConn
	rc   syscall.RawConn
	req  []byte // the requests being written, reused
	// pre are prefetched answers by path, each taken by one get; noPipeline: the endpoint did
	// not answer pipelined requests.
	pre        map[string]preAnswer
	noPipeline bool
	// io is the state of the read or write in progress; readFn and writeFn its callbacks.
	io              ioState
	readFn, writeFn func(fd uintptr) bool
	one             [1]string   // get's one path
	got             []preAnswer // exchange's answers, reused
	// armed: the connection's deadlines are set (a wait in the runtime's poller).
	armed bool
	buf   []byte // the answer being read, reused
}

// fastWait bounds the wait for an answer on the calling thread, outside the scheduler: the
// thread keeps its P meanwhile, so it is kept short.
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
	if r.conn != nil {
		return false, nil
	}
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", r.host)
	if err != nil {
		return false, err
	}
	tc, ok := c.(*net.TCPConn)
	var rc syscall.RawConn
	if ok {
		rc, err = tc.SyscallConn()
	}
	if !ok || err != nil {
		_ = c.Close()
		r.host = ""
		return false, errProtocol
	}
	r.conn, r.rc = tc, rc
	return true, nil
}

func (r *rawConn) close() {
	if r.conn != nil {
		_ = r.conn.Close()
		r.conn, r.rc = nil, nil
	}
}

// deadline arms the connection's deadlines for a wait in the runtime's poller: ctx's deadline,
// else requestTimeout from now. They are only armed when a wait is needed, and cleared after
// (see exchange): the poller's deadline timers, moved at every poll, wake the idle process.
func (r *rawConn) deadline(ctx context.Context) {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(requestTimeout)
	}
	_ = r.conn.SetDeadline(d)
	r.armed = true
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
	defer func() {
		if r.armed && r.conn != nil {
			_ = r.conn.SetDeadline(time.Time{})
			r.armed = false
		}
	}()
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
	if err := r.write(ctx); err != nil {
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
		if a, err = r.readAnswer(ctx); err == nil {
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
func (r *rawConn) readAnswer(ctx context.Context) (answer, error) {
	r.io = ioState{ctx: ctx}
	if done, err := r.io.a.parse(r.buf); done || err != nil {
		return r.io.a, err
	}
	if r.readFn == nil {
		r.readFn = r.readSome
	}
	err := r.rc.Read(r.readFn)
	if err == nil {
		err = r.io.err
	}
	return r.io.a, err
}

// readSome is readAnswer's syscall.RawConn callback: true once the answer is complete or
// reading failed (r.io.err), false to wait in the runtime's poller.
func (r *rawConn) readSome(fd uintptr) bool {
	if !r.io.waited {
		// The request was just written: the answer is not there yet.
		r.io.waited = true
		fastWaitReadable(int(fd), fastWait)
	}
	for {
		if len(r.buf) == cap(r.buf) {
			if cap(r.buf) >= maxAnswer {
				r.io.err = errProtocol
				return true
			}
			r.buf = append(r.buf, make([]byte, cap(r.buf))...)[:len(r.buf)]
		}
		n, errno := rawRead(int(fd), r.buf[len(r.buf):cap(r.buf)])
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			r.deadline(r.io.ctx)
			return false // slower than fastWait: the runtime's poller waits, under the deadline
		case errno != 0:
			r.io.err = errno
			return true
		case n == 0:
			r.io.err = errClosed
			return true
		}
		r.buf = r.buf[:len(r.buf)+n]
		var done bool
		if done, r.io.err = r.io.a.parse(r.buf); done || r.io.err != nil {
			return true
		}
	}
}

// write writes r.req to the socket.
func (r *rawConn) write(ctx context.Context) error {
	r.io = ioState{ctx: ctx}
	if r.writeFn == nil {
		r.writeFn = r.writeSome
	}
	if err := r.rc.Write(r.writeFn); err != nil {
		return err
	}
	return r.io.err
}

// writeSome is write's syscall.RawConn callback (a method value made once: a closure per poll
// would be allocated at every poll).
func (r *rawConn) writeSome(fd uintptr) bool {
	for r.io.off < len(r.req) {
		n, errno := rawWrite(int(fd), r.req[r.io.off:])
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			r.deadline(r.io.ctx)
			return false
		case errno != 0:
			r.io.err = errno
			return true
		}
		r.io.off += n
	}
	return true
}

// ioState is the state of the write or read in progress (under mu).
type ioState struct {
	ctx    context.Context
	off    int
	waited bool
	a      answer
	err    error
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
