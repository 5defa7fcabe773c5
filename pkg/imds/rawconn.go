package imds

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rawConn sends the lean path's GETs as HTTP/1.1 over one kept-alive TCP connection, written and
// read on the caller's goroutine. net/http hands every request to the connection's own reader
// and writer goroutines; at several polls a second those hand-offs were a large part of an idle
// agent's CPU. Anything it does not expect — an https or non-IP endpoint, a broken connection, a
// response without Content-Length — makes the caller use net/http for that request (get's ok is
// false), so it is an optimisation and never the only way.
type rawConn struct {
	hdr string // "Host: ...\r\n"

	mu   sync.Mutex
	host string // host:port; "" when the endpoint is not plain http or answered unexpectedly
	conn net.Conn
	br   *bufio.Reader
}

func newRawConn(base string) *rawConn {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Path != "" && u.Path != "/" {
		return &rawConn{}
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	return &rawConn{host: host, hdr: "Host: " + u.Host + "\r\n"}
}

// get sends GET path with one extra header and returns the status and body; ok is false when
// the request could not be made this way (the caller then uses net/http).
func (r *rawConn) get(ctx context.Context, path, header, value string) (status int, body string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.host == "" {
		return 0, "", false
	}
	for attempt := 0; attempt < 2; attempt++ {
		fresh := false
		if r.conn == nil {
			d := net.Dialer{Timeout: time.Second}
			c, err := d.DialContext(ctx, "tcp", r.host)
			if err != nil {
				return 0, "", false
			}
			r.conn, r.br, fresh = c, bufio.NewReaderSize(c, 4096), true
		}
		deadline, has := ctx.Deadline()
		if !has {
			deadline = time.Now().Add(requestTimeout)
		}
		_ = r.conn.SetDeadline(deadline)
		status, body, keep, err := r.roundTrip(path, header, value)
		if !keep || err != nil {
			r.close()
		}
		if errors.Is(err, errProtocol) {
			r.host = "" // an endpoint that answers otherwise than IMDS does: net/http from now on
			return 0, "", false
		}
		if err == nil {
			return status, body, true
		}
		if fresh || ctx.Err() != nil {
			return 0, "", false
		}
		// A kept connection the server closed meanwhile: once more on a new one.
	}
	return 0, "", false
}

func (r *rawConn) close() {
	if r.conn != nil {
		_ = r.conn.Close()
		r.conn, r.br = nil, nil
	}
}

func (r *rawConn) roundTrip(path, header, value string) (status int, body string, keep bool, err error) {
	req := "GET " + path + " HTTP/1.1\r\n" + r.hdr + header + ": " + value + "\r\nUser-Agent: spotmax-agent\r\n\r\n"
	if _, err := io.WriteString(r.conn, req); err != nil {
		return 0, "", false, err
	}
	line, err := r.br.ReadString('\n')
	if err != nil {
		return 0, "", false, err
	}
	// HTTP/1.1 404 Not Found
	f := strings.SplitN(strings.TrimRight(line, "\r\n"), " ", 3)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
		return 0, "", false, errProtocol
	}
	if status, err = strconv.Atoi(f[1]); err != nil {
		return 0, "", false, errProtocol
	}
	length, keep := -1, f[0] == "HTTP/1.1"
	for {
		h, err := r.br.ReadString('\n')
		if err != nil {
			return 0, "", false, err
		}
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		k, v, _ := strings.Cut(h, ":")
		v = strings.TrimSpace(v)
		switch {
		case strings.EqualFold(k, "Content-Length"):
			if length, err = strconv.Atoi(v); err != nil || length < 0 || length > 1<<20 {
				return 0, "", false, errProtocol
			}
		case strings.EqualFold(k, "Transfer-Encoding"):
			return 0, "", false, errProtocol // chunked: let net/http read it
		case strings.EqualFold(k, "Connection"):
			keep = keep && !strings.EqualFold(v, "close")
		}
	}
	if length < 0 {
		return 0, "", false, errProtocol
	}
	b := make([]byte, length)
	if _, err := io.ReadFull(r.br, b); err != nil {
		return 0, "", false, err
	}
	return status, string(b), keep, nil
}

type protocolError struct{}

func (protocolError) Error() string { return "unexpected HTTP response from IMDS" }

var errProtocol error = protocolError{}
