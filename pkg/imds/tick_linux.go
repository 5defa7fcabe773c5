package imds

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelTicker is the watcher's tick on Linux: a timerfd with an absolute, periodic expiry,
// read through the runtime's network poller with a raw read. No runtime timer is involved: a Go
// timer also wakes the runtime's monitor thread (sysmon) at every expiry, which on this kind of
// virtual machine cost twice as much as the wake-up itself (docs/benchmarks.md, issue 16).
type kernelTicker struct {
	f      *os.File
	rc     syscall.RawConn
	buf    [8]byte
	n      int64 // expirations read by the last wait
	err    error
	readFn func(fd uintptr) bool
}

// newTicker returns a ticker firing at start + n × period; it is closed when ctx ends.
func newTicker(ctx context.Context, period time.Duration) (ticker, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		// No timerfd (a seccomp filter, an old kernel): a Go timer does.
		return newRuntimeTicker(ctx, period), nil
	}
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("reading the monotonic clock: %w", err)
	}
	spec := unix.ItimerSpec{Interval: unix.NsecToTimespec(int64(period)), Value: unix.NsecToTimespec(now.Nano() + int64(period))}
	if err := unix.TimerfdSettime(fd, unix.TFD_TIMER_ABSTIME, &spec, nil); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("arming the poll timer: %w", err)
	}
	// A non-blocking descriptor given to os.NewFile is served by the runtime's poller, so Close
	// unblocks the wait.
	t := &kernelTicker{f: os.NewFile(uintptr(fd), "timerfd")}
	if t.rc, err = t.f.SyscallConn(); err != nil {
		_ = t.f.Close()
		return nil, fmt.Errorf("polling the poll timer: %w", err)
	}
	go func() {
		<-ctx.Done()
		_ = t.f.Close()
	}()
	return t, nil
}

// wait returns the number of periods that ended since the last wait (more than one when polls
// overran), or an error once ctx ended.
func (t *kernelTicker) wait(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t.n, t.err = 0, nil
	if t.readFn == nil {
		t.readFn = t.read // once: a closure per wait would be allocated at every tick
	}
	err := t.rc.Read(t.readFn)
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if err == nil {
		err = t.err
	}
	if err != nil {
		return 0, fmt.Errorf("waiting for the poll timer: %w", err)
	}
	return t.n, nil
}

// read is wait's syscall.RawConn callback: false (wait in the poller) until the timer expired.
func (t *kernelTicker) read(fd uintptr) bool {
	for {
		_, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&t.buf[0])), uintptr(len(t.buf)))
		switch e {
		case 0:
			t.n = int64(*(*uint64)(unsafe.Pointer(&t.buf[0])))
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		t.err = e
		return true
	}
}
