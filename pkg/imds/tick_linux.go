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
	// start is when the timer was armed, read just after the clock it was armed from (so
	// start + (ended+1) × period is at most microseconds after the next expiry); ended counts
	// the expirations read so far. waiting is true within one wait after its first callback.
	start   time.Time
	period  time.Duration
	ended   int64
	waiting bool
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
	t := &kernelTicker{f: os.NewFile(uintptr(fd), "timerfd"), start: time.Now(), period: period}
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
	t.n, t.err, t.waiting = 0, nil, false
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
//
// Its first call in a wait reads nothing when the next expiry is more than earlyMargin away:
// the timer cannot have expired, and the read would only say EAGAIN, one system call in six
// of an idle agent's tick. The runtime calls it after it has reset the descriptor's readiness,
// so an expiry after this check still wakes the wait; one before it makes the clock say so and
// the read happens.
func (t *kernelTicker) read(fd uintptr) bool {
	if !t.waiting {
		t.waiting = true
		if time.Since(t.start)+earlyMargin < time.Duration(t.ended+1)*t.period {
			return false
		}
	}
	for {
		_, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&t.buf[0])), uintptr(len(t.buf)))
		switch e {
		case 0:
			t.n = int64(*(*uint64)(unsafe.Pointer(&t.buf[0])))
			t.ended += t.n
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

// earlyMargin is how far before the next expiry the ticker still reads the timer rather than
// trusting the clock (time.Since reads CLOCK_MONOTONIC, the timerfd's clock, through the vDSO).
const earlyMargin = time.Millisecond
