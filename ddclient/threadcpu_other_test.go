//go:build !linux

package ddclient

// threadCPU is 0: only Linux gives a thread's CPU time (RUSAGE_THREAD).
func threadCPU() int64 { return 0 }
