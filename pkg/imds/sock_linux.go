package imds

import (
	"context"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sock is the lean path's kept-alive TCP connection to IMDS on Linux: a blocking socket of its
// own, outside the runtime's network poller, with a receive timeout of fastWait. An idle agent's
// poll is then one write and one read that returns with the answer: the read waits for it in the
// kernel, on the calling thread, without the poller's readiness events or a separate wait call
// (each system call is a measurable part of an idle agent's CPU on a virtual machine,
// docs/benchmarks.md, issue 16). The fast calls are made with RawSyscall, which keeps the
// thread's P (no entersyscall/exitsyscall and no wake-up of the runtime's monitor thread); they
// return at once or within fastWait. Anything slower is waited for with ordinary system calls,
// which let the runtime run other goroutines meanwhile, in slices of at most slowSlice so that
// ctx's end is seen.
type sock struct {
	fd int
}

// slowSlice bounds one blocking wait of the slow path.
const slowSlice = 100 * time.Millisecond

// dialSock connects to hostport, an IP address and port; ok is false when hostport is not one
// (the caller then uses net/http).
func dialSock(ctx context.Context, hostport string) (s *sock, ok bool, err error) {
	ap, perr := netip.ParseAddrPort(hostport)
	if perr != nil {
		return nil, false, nil
	}
	var sa unix.Sockaddr
	family := unix.AF_INET
	if ip := ap.Addr().Unmap(); ip.Is4() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}
	} else {
		if ip.Zone() != "" {
			return nil, false, nil
		}
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, true, fmt.Errorf("IMDS socket: %w", err)
	}
	s = &sock{fd: fd}
	// A blocking connect gives up after SO_SNDTIMEO (the net.Dialer timeout it replaces).
	connectTimeout := time.Second
	if d, ok := ctx.Deadline(); ok && time.Until(d) < connectTimeout {
		connectTimeout = max(time.Until(d), time.Millisecond)
	}
	if err := s.setTimeout(unix.SO_SNDTIMEO, connectTimeout); err != nil {
		s.close()
		return nil, true, err
	}
	// A connect interrupted by a signal is not retried (it would say EALREADY): the request goes
	// through net/http this once, and the next poll connects again.
	if err = unix.Connect(fd, sa); err != nil {
		s.close()
		if err == unix.EINPROGRESS || err == unix.EAGAIN {
			err = fmt.Errorf("connecting to IMDS at %s: timed out after %v", hostport, connectTimeout)
		} else {
			err = fmt.Errorf("connecting to IMDS at %s: %w", hostport, err)
		}
		return nil, true, err
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		s.close()
		return nil, true, fmt.Errorf("IMDS socket: TCP_NODELAY: %w", err)
	}
	for _, o := range []int{unix.SO_SNDTIMEO, unix.SO_RCVTIMEO} {
		if err := s.setTimeout(o, fastWait); err != nil {
			s.close()
			return nil, true, err
		}
	}
	return s, true, nil
}

func (s *sock) setTimeout(opt int, d time.Duration) error {
	tv := unix.NsecToTimeval(int64(max(d, time.Microsecond)))
	if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, opt, &tv); err != nil {
		return fmt.Errorf("IMDS socket: setting a timeout: %w", err)
	}
	return nil
}

func (s *sock) close() {
	if s != nil && s.fd >= 0 {
		_ = unix.Close(s.fd)
		s.fd = -1
	}
}

// write writes all of b before deadline.
func (s *sock) write(ctx context.Context, b []byte, deadline time.Time) error {
	_, _, err := s.ioN(ctx, unix.SYS_WRITE, unix.SO_SNDTIMEO, b, deadline, true)
	return err
}

// read reads what is there of the answer into b, waiting for some until deadline; n > 0 when
// err is nil, and 0 with a nil error when the server closed the connection.
func (s *sock) read(ctx context.Context, b []byte, deadline time.Time) (n int, closed bool, err error) {
	if len(b) == 0 {
		return 0, false, nil
	}
	n, _, err = s.ioN(ctx, unix.SYS_READ, unix.SO_RCVTIMEO, b, deadline, false)
	return n, err == nil && n == 0, err
}

// ioN reads or writes b (all of it when all), first with fast calls, then, once one timed out,
// with ordinary calls until deadline or ctx's end.
func (s *sock) ioN(ctx context.Context, call uintptr, opt int, b []byte, deadline time.Time, all bool) (n int, slow bool, err error) {
	defer func() {
		if slow && s.fd >= 0 {
			if e := s.setTimeout(opt, fastWait); e != nil && err == nil {
				err = e
			}
		}
	}()
	for n < len(b) {
		var r uintptr
		var errno unix.Errno
		p := unsafe.Pointer(&b[n])
		if !slow {
			r, _, errno = unix.RawSyscall(call, uintptr(s.fd), uintptr(p), uintptr(len(b)-n))
		} else {
			r, _, errno = unix.Syscall(call, uintptr(s.fd), uintptr(p), uintptr(len(b)-n))
		}
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			if err := ctx.Err(); err != nil {
				return n, slow, err
			}
			left := time.Until(deadline)
			if left <= 0 {
				return n, slow, fmt.Errorf("IMDS did not answer within %v: %w", requestTimeout, context.DeadlineExceeded)
			}
			slow = true
			if err := s.setTimeout(opt, min(left, slowSlice)); err != nil {
				return n, slow, err
			}
			continue
		case errno != 0:
			return n, slow, errno
		}
		if r == 0 && call == unix.SYS_READ {
			return n, slow, nil // closed by the server
		}
		n += int(r)
		if !all {
			return n, slow, nil
		}
	}
	return n, slow, nil
}
