package agent

import (
	"context"
	"os"

	"golang.org/x/sys/unix"
)

// devWatch wakes the remount loop when an entry appears in one of the device directories
// (/dev for kernel device nodes, /dev/disk/by-id for udev's links), so that waiting for a
// volume costs nothing while nothing happens and reacts at once when the device shows up.
type devWatch struct {
	f *os.File
	c chan struct{}
}

// watchDevices starts watching dirs that exist; nil when inotify is not available (the loop
// then polls).
func watchDevices(ctx context.Context, dirs ...string) *devWatch {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil
	}
	n := 0
	for _, d := range dirs {
		if d == "" || d == "-" {
			continue
		}
		if _, err := unix.InotifyAddWatch(fd, d, unix.IN_CREATE|unix.IN_MOVED_TO); err == nil {
			n++
		}
	}
	if n == 0 {
		_ = unix.Close(fd)
		return nil
	}
	// A non-blocking descriptor handed to os.NewFile is served by the runtime's poller, so
	// Close unblocks the reader.
	w := &devWatch{f: os.NewFile(uintptr(fd), "inotify"), c: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := w.f.Read(buf); err != nil {
				return
			}
			select {
			case w.c <- struct{}{}:
			default:
			}
		}
	}()
	go func() {
		<-ctx.Done()
		_ = w.f.Close()
	}()
	return w
}

// C returns the wake-up channel; nil (never ready) for a nil watch.
func (w *devWatch) C() <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.c
}
