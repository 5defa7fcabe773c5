package imds

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The poll's system calls on Linux are made with RawSyscall: without the runtime's
// entersyscall/exitsyscall, which wake its monitor thread and may hand the P to another thread
// while the call lasts. Each of them returns at once (a non-blocking socket) or within
// fastWaitReadable's bound.

func rawRead(fd int, b []byte) (int, unix.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), e
}

func rawWrite(fd int, b []byte) (int, unix.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), e
}

// fastWaitReadable blocks the calling thread until fd is readable or d has passed (or a signal
// came): the thread keeps its P, so d must be short.
func fastWaitReadable(fd int, d time.Duration) {
	pfd := unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	ts := unix.NsecToTimespec(int64(d))
	_, _, _ = unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
}
