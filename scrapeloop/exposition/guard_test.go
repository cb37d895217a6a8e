//go:build linux

package exposition

import (
	"os"
	"sync"
	"syscall"
	"testing"
)

// The parser reads the payload a word at a time through unsafe loads that
// bounds checks do not watch. A guarded buffer places a payload so that it
// ends right where an unreadable page begins: any read past the end faults
// (the test binary dies with SIGSEGV) instead of silently reading whatever
// lies behind a Go slice.
type guarded struct {
	mem  []byte // size bytes readable, then one PROT_NONE page
	size int
}

func newGuarded(tb testing.TB, size int) *guarded {
	page := os.Getpagesize()
	size = (size + page - 1) / page * page
	mem, err := syscall.Mmap(-1, 0, size+page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		tb.Fatalf("mmap: %v", err)
	}
	if err := syscall.Mprotect(mem[size:], syscall.PROT_NONE); err != nil {
		tb.Fatalf("mprotect: %v", err)
	}
	return &guarded{mem: mem, size: size}
}

// place copies data to end at the guard page and returns the copy, or nil
// if it does not fit.
func (g *guarded) place(data []byte) []byte {
	if len(data) > g.size {
		return nil
	}
	start := g.size - len(data)
	copy(g.mem[start:g.size], data)
	return g.mem[start:g.size:g.size]
}

var (
	fuzzGuardOnce sync.Once
	fuzzGuard     *guarded
)

// guardedCopy returns data placed against a guard page (one buffer per
// process, for the fuzz target), or data itself when it is too large.
func guardedCopy(tb testing.TB, data []byte) []byte {
	fuzzGuardOnce.Do(func() { fuzzGuard = newGuarded(tb, 4<<20) })
	if g := fuzzGuard.place(data); g != nil {
		return g
	}
	return data
}

// TestGuardedPrefixes parses every prefix of the reuse cases and of the
// head of every corpus file, each ending at a guard page, in both formats
// and both modes: cut anywhere, a payload is never read past its end.
func TestGuardedPrefixes(t *testing.T) {
	var inputs [][]byte
	for _, c := range reuseCases {
		inputs = append(inputs, []byte(c.input))
	}
	for _, file := range corpusFiles(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, data[:min(len(data), 2048)])
	}
	g := newGuarded(t, 4096)
	var p Parser
	var ls []Label
	for _, in := range inputs {
		for n := 0; n <= len(in); n++ {
			data := g.place(in[:n])
			for _, f := range []Format{FormatPrometheus, FormatOpenMetrics} {
				for _, strict := range []bool{false, true} {
					p.SetStrict(strict)
					p.Reset(data, f)
					for p.Next() {
						ls = p.Labels(ls[:0])
						p.Created()
					}
				}
			}
		}
	}
}
