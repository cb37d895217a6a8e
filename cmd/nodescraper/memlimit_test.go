package main

import (
	"testing"
)

func TestParseSize(t *testing.T) {
	ok := func(s string, want int64) {
		t.Helper()
		got, err := parseSize(s)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	bad := func(s string) {
		t.Helper()
		if got, err := parseSize(s); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", s, got)
		}
	}
	ok("1048576", 1<<20)
	ok("100B", 100)
	ok("512KiB", 512<<10)
	ok("64MiB", 64<<20)
	ok("1GiB", 1<<30)
	ok("1Ki", 1<<10)
	ok("16Mi", 16<<20)
	ok("2Gi", 2<<30)
	ok("1.5KiB", 1536)
	ok("0.5MiB", 512<<10)
	ok(" 64 MiB", 64<<20)
	ok("4294967296GiB", 1<<62) // the largest accepted

	bad("")
	bad("lots")
	bad("MiB")
	bad("0")
	bad("0B")
	bad("-1")
	bad("-64MiB")
	bad("NaN")
	bad("nan")
	bad("NaNMiB")
	bad("Inf")
	bad("+InfGiB")
	bad("-Inf")
	bad("0.5")           // half a byte
	bad("1.5")           // a byte and a half
	bad("1.0001KiB")     // 1024.1024 bytes
	bad("1e300")         // overflows int64
	bad("8589934592GiB") // 2^63
	bad("64MB")
}

func TestParseMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"auto", 0, false}, {"off", 0, false}, {"512MiB", 512 << 20, false}, {"1Gi", 1 << 30, false},
		{"", 0, true}, {"none", 0, true}, {"NaN", 0, true}, {"-1GiB", 0, true}, {"0.5", 0, true},
	} {
		got, err := parseMemoryLimit(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want %d, error %v", c.in, got, err, c.want, c.err)
		}
	}
}
