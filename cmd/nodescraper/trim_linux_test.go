package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// rssFile is the process's resident file-backed memory, from
// /proc/self/status.
func rssFile(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestReleaseImagePages: releasing the executable's read-only pages lowers
// the file-backed RSS, and the code and data released still work (they are
// mapped back from the file when used).
func TestReleaseImagePages(t *testing.T) {
	before := rssFile(t)
	n, err := releaseImagePages()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("released %d bytes of mappings: RssFile %d KiB -> %d KiB", n, before>>10, after>>10)
	if n == 0 || after >= before {
		t.Fatalf("released %d bytes of mappings, RssFile %d -> %d: nothing left RSS", n, before, after)
	}
	// Code and read-only data run again after the release.
	if _, err := parseSize("512MiB"); err != nil {
		t.Fatal(err)
	}
}
