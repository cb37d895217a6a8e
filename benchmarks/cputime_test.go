package benchmarks

import (
	"syscall"
	"time"
	"unsafe"
)

// threadCPUTime returns the CPU time of the calling OS thread, with
// nanosecond resolution (clock_gettime CLOCK_THREAD_CPUTIME_ID; getrusage
// counts in scheduler ticks, too coarse for short runs); the caller locks
// its goroutine to the thread. Linux only, like the rest of this module's
// measurements.
func threadCPUTime() time.Duration {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}
