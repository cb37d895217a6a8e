package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// parseMemoryLimit reads --memory-limit: "auto" and "off" give 0 (decided
// at start), a size gives its bytes.
func parseMemoryLimit(s string) (int64, error) {
	switch s {
	case "auto", "off":
		return 0, nil
	}
	n, err := parseSize(s)
	if err != nil {
		return 0, errors.New("want auto, off, or a size such as 512MiB")
	}
	return n, nil
}

// sizeUnits are the suffixes parseSize reads, longest first where one ends
// another ("KiB" before "B"); "" is plain bytes.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"B", 1}, {"", 1}}

// maxSize is the largest size parseSize accepts: 4 EiB, far above any memory
// or disk bound. A power of two, float64 holds it exactly, so the check in
// float64 is exact and the result fits an int64 (float64(math.MaxInt64)
// rounds up to 2^63, which does not).
const maxSize = 1 << 62

// parseSize reads a positive whole number of bytes, written plain or with a
// binary unit: 1048576, 512KiB, 1.5MiB, 64Mi, 1Gi. NaN, infinities, zero,
// negative sizes, sizes over maxSize and fractions of a byte are errors.
func parseSize(s string) (int64, error) {
	for _, u := range sizeUnits {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		// Written so that NaN, which compares false with everything, fails.
		if err != nil || !(n > 0 && n*float64(u.mult) <= maxSize) {
			return 0, errors.New("want a size such as 512MiB")
		}
		b := n * float64(u.mult)
		if b != math.Trunc(b) {
			return 0, errors.New("not a whole number of bytes")
		}
		return int64(b), nil
	}
	return 0, errors.New("want a size such as 512MiB")
}

// cgroupFiles are where a container's memory limit is read: cgroup v2, then v1.
var cgroupFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// cgroupLimit returns the container's memory limit, or 0 when there is none.
func cgroupLimit(files []string) int64 {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		return parseCgroupLimit(string(b))
	}
	return 0
}

// parseCgroupLimit reads a cgroup memory limit file's content: bytes, or 0
// for none ("max", or anything that is not a positive number below 2^60).
func parseCgroupLimit(s string) int64 {
	v := strings.TrimSpace(s)
	if v == "max" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	// cgroup v1 reports "no limit" as a huge page-aligned number.
	if err != nil || n <= 0 || n >= 1<<60 {
		return 0
	}
	return n
}

// applyMemoryLimit sets the Go runtime's soft memory limit so that the
// garbage collector works harder before the container's limit is reached,
// instead of letting the heap grow to twice its live size (GOGC=100). An
// explicit GOMEMLIMIT wins. It returns the limit set (0: none) and why.
func applyMemoryLimit(setting string, getenv func(string) string, files []string) (int64, string) {
	if getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	}
	switch setting {
	case "off":
		return 0, "off"
	case "auto":
		lim := cgroupLimit(files)
		if lim == 0 {
			return 0, "no container limit"
		}
		// 10% for what the runtime does not count: stacks, mappings, the
		// kernel's page cache charged to the container.
		lim = lim / 10 * 9
		debug.SetMemoryLimit(lim)
		return lim, fmt.Sprintf("90%% of the cgroup limit %d", cgroupLimit(files))
	}
	n, _ := parseMemoryLimit(setting)
	debug.SetMemoryLimit(n)
	return n, "--memory-limit"
}

// defaultGCPercent is --gc-percent's default. Once its tables are built the
// agent allocates little per scrape, so collections are rare whatever GOGC
// is, and what GOGC=100 mostly does is let the heap, and RSS with it, settle
// at twice the live heap after the tables grew (measured at 1M series: 301
// MiB at 100, 233 MiB at 25, CPU within noise).
const defaultGCPercent = 25

// applyGCPercent sets GOGC to percent unless the environment sets GOGC,
// which wins; it returns the value in force and why.
func applyGCPercent(percent int, getenv func(string) string) (int, string) {
	if getenv("GOGC") != "" {
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		return p, "GOGC"
	}
	debug.SetGCPercent(percent)
	return percent, "--gc-percent"
}
