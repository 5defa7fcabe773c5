//go:build !linux

package imds

import (
	"syscall"
	"time"
)

// Elsewhere than on Linux (the agent's only platform; this keeps the package building for tests
// on a developer's machine) the socket is read and written with ordinary system calls and the
// wait is always the runtime's poller.

func rawRead(fd int, b []byte) (int, syscall.Errno) {
	n, err := syscall.Read(fd, b)
	return max(n, 0), errnoOf(err)
}

func rawWrite(fd int, b []byte) (int, syscall.Errno) {
	n, err := syscall.Write(fd, b)
	return max(n, 0), errnoOf(err)
}

func errnoOf(err error) syscall.Errno {
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	if err != nil {
		return syscall.EIO
	}
	return 0
}

func fastWaitReadable(int, time.Duration) {}
