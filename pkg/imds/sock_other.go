//go:build !linux

package imds

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"
)

// sock elsewhere than on Linux (the agent's only platform; this keeps the package building and
// its tests running on a developer's machine) is a net.Conn with deadlines.
type sock struct {
	c net.Conn
}

func dialSock(ctx context.Context, hostport string) (*sock, bool, error) {
	if _, err := netip.ParseAddrPort(hostport); err != nil {
		return nil, false, nil
	}
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, true, err
	}
	return &sock{c: c}, true, nil
}

func (s *sock) close() {
	if s != nil && s.c != nil {
		_ = s.c.Close()
		s.c = nil
	}
}

func (s *sock) write(_ context.Context, b []byte, deadline time.Time) error {
	_ = s.c.SetWriteDeadline(deadline)
	_, err := s.c.Write(b)
	return err
}

func (s *sock) read(_ context.Context, b []byte, deadline time.Time) (int, bool, error) {
	_ = s.c.SetReadDeadline(deadline)
	n, err := s.c.Read(b)
	if errors.Is(err, io.EOF) {
		return n, n == 0, nil
	}
	return n, false, err
}
