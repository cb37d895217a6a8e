package ddclient

import "syscall"

// threadCPU is the CPU time of the calling thread in nanoseconds (the
// caller locks its goroutine to the thread), 0 when unknown.
func threadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1, &ru); err != nil { // 1: RUSAGE_THREAD
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
