package benchmarks

import (
	"syscall"
	"time"
)

// threadCPUTime returns the CPU time (user + system) of the calling OS
// thread; the caller locks its goroutine to the thread.
func threadCPUTime() time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD, Linux
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
