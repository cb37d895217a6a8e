package spool

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// drops records what a spool reports as dropped, by reason.
type drops struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *drops) add(points int, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = map[string]int{}
	}
	d.n[reason] += points
}

func (d *drops) get(reason string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[reason]
}

func open(t *testing.T, dir string, maxBytes, segBytes int64, d *drops) *Spool {
	t.Helper()
	s, err := Open(Config{Dir: dir, MaxBytes: maxBytes, SegmentBytes: segBytes, Dropped: d.add, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rec is a record whose fields all derive from i, so a wrong or shuffled
// record shows.
func rec(i, size int) Record {
	return Record{
		Body:     bytes.Repeat([]byte{byte(i), byte(i >> 8)}, size/2),
		Encoding: []string{"zstd1", "gzip", ""}[i%3],
		Endpoint: Endpoint(i % 2),
		Raw:      10 * size, Points: 1 + i%7, MinTS: 1_700_000_000 + int64(i),
	}
}

// readAll takes every waiting segment, oldest first, and finishes it.
func readAll(t *testing.T, s *Spool) []Record {
	t.Helper()
	var out []Record
	for {
		g, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		if g == nil {
			return out
		}
		out = append(out, g.Records...)
		if err := s.Done(g); err != nil {
			t.Fatal(err)
		}
	}
}

func equal(a, b Record) bool {
	return bytes.Equal(a.Body, b.Body) && a.Encoding == b.Encoding && a.Endpoint == b.Endpoint && a.Raw == b.Raw && a.Points == b.Points && a.MinTS == b.MinTS
}

func checkRecords(t *testing.T, got []Record, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		if !equal(got[i], want[i]) {
			t.Fatalf("record %d: %+v, want %+v", i, got[i].MinTS, want[i].MinTS)
		}
	}
}

// TestFIFOAcrossRestart: records come back in order, over several
// segments, from this process and, after Close, from a new one.
func TestFIFOAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	d := &drops{}
	s := open(t, dir, 1<<20, 4<<10, d)
	var want []Record
	for i := range 40 {
		r := rec(i, 500)
		want = append(want, r)
		if err := s.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Segments(); n < 4 {
		t.Fatalf("%d segments: want the records spread over several", n)
	}
	points := 0
	for _, r := range want {
		points += r.Points
	}
	if s.Points() != points {
		t.Fatalf("Points %d, want %d", s.Points(), points)
	}
	// Half read in this process, the rest after a restart.
	g, err := s.Next()
	if err != nil || g == nil {
		t.Fatal(g, err)
	}
	first := g.Records
	if err := s.Done(g); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, 1<<20, 4<<10, d)
	defer s.Close()
	rest := readAll(t, s)
	checkRecords(t, append(first, rest...), want)
	if !s.Empty() || s.Points() != 0 || s.Bytes() != 0 || s.Segments() != 0 {
		t.Fatalf("after reading all: empty %v, %d points, %d bytes, %d segments", s.Empty(), s.Points(), s.Bytes(), s.Segments())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files left: %v", ents)
	}
	if len(d.n) != 0 {
		t.Fatalf("drops %v", d.n)
	}
}

// TestBound: past MaxBytes the oldest segments go, their points reported;
// what is left is the newest records, whole and in order.
func TestBound(t *testing.T) {
	d := &drops{}
	s := open(t, t.TempDir(), 20<<10, 4<<10, d)
	defer s.Close()
	var all []Record
	for i := range 200 {
		r := rec(i, 300)
		all = append(all, r)
		if err := s.Append(r); err != nil {
			t.Fatal(err)
		}
		if s.Bytes() > 20<<10 {
			t.Fatalf("after %d records the spool holds %d bytes, bound %d", i+1, s.Bytes(), 20<<10)
		}
	}
	got := readAll(t, s)
	if len(got) == 0 || len(got) >= len(all) {
		t.Fatalf("%d records kept of %d", len(got), len(all))
	}
	checkRecords(t, got, all[len(all)-len(got):])
	lost := 0
	for _, r := range all[:len(all)-len(got)] {
		lost += r.Points
	}
	if d.get("spool_full") != lost {
		t.Fatalf("reported %d points dropped, lost %d", d.get("spool_full"), lost)
	}
}

// TestCrashWhileWriting: a segment cut inside a record (a killed writer, a
// crashed machine) keeps its whole records; other segments are untouched;
// a corrupt byte ends its segment there, the loss reported.
func TestCrashWhileWriting(t *testing.T) {
	for _, tc := range []struct {
		name string
		harm func(t *testing.T, path string)
		// kept is how many of the damaged (last) segment's 5 records survive.
		kept int
	}{
		{"cut inside a body", func(t *testing.T, p string) { truncate(t, p, -100) }, 4},
		{"cut inside a header", func(t *testing.T, p string) { truncate(t, p, -(500 + recHeader - 3)) }, 4},
		{"cut after the magic", func(t *testing.T, p string) { truncate(t, p, int64(len(magic)-fileSize(t, p))) }, 0},
		{"cut inside the magic", func(t *testing.T, p string) { truncate(t, p, int64(3-fileSize(t, p))) }, 0},
		{"flipped byte in record 3", func(t *testing.T, p string) { flip(t, p, int64(len(magic)+2*(recHeader+500)+recHeader+7)) }, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := &drops{}
			s := open(t, dir, 1<<20, int64(5*(recHeader+500)+len(magic)), d)
			var want []Record
			for i := range 15 {
				r := rec(i, 500)
				want = append(want, r)
				if err := s.Append(r); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
			slices.Sort(files)
			if len(files) != 3 {
				t.Fatalf("%d segments, want 3 of 5 records", len(files))
			}
			tc.harm(t, files[2])
			s = open(t, dir, 1<<20, 1<<20, d)
			defer s.Close()
			got := readAll(t, s)
			checkRecords(t, got, want[:10+tc.kept])
		})
	}
}

// TestCorruptWhileRunning: damage to a closed segment under a running
// spool is found when it is read; the records lost are reported.
func TestCorruptWhileRunning(t *testing.T) {
	dir := t.TempDir()
	d := &drops{}
	s := open(t, dir, 1<<20, int64(5*(recHeader+500)+len(magic)), d)
	defer s.Close()
	var want []Record
	for i := range 10 {
		r := rec(i, 500)
		want = append(want, r)
		if err := s.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	slices.Sort(files)
	flip(t, files[0], int64(len(magic)+3*(recHeader+500)+recHeader+1)) // record 4 of 5
	got := readAll(t, s)
	checkRecords(t, got, append(slices.Clone(want[:3]), want[5:]...))
	if lost := want[3].Points + want[4].Points; d.get("spool_corrupt") != lost {
		t.Fatalf("reported %d corrupt points, lost %d", d.get("spool_corrupt"), lost)
	}
}

func TestRefused(t *testing.T) {
	dir := t.TempDir()
	// Not a segment: removed at Open, nothing read from it.
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d%s", 7, suffix)), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &drops{}
	s := open(t, dir, 1<<20, 1<<20, d)
	defer s.Close()
	if !s.Empty() || s.Segments() != 0 {
		t.Fatalf("garbage file taken as a segment")
	}
	if err := s.Append(Record{Encoding: "br", Body: []byte("x")}); err == nil {
		t.Fatal("unknown encoding accepted")
	}
	if err := s.Append(Record{Endpoint: numEndpoints, Body: []byte("x")}); err == nil {
		t.Fatal("unknown endpoint accepted")
	}
	// A record larger than the whole bound is dropped and reported, not written.
	small := open(t, t.TempDir(), 4<<10, 1<<10, d)
	defer small.Close()
	if err := small.Append(Record{Body: make([]byte, 8<<10), Points: 3}); err != nil {
		t.Fatal(err)
	}
	if d.get("spool_full") != 3 || !small.Empty() {
		t.Fatalf("oversized record: %d reported, empty %v", d.get("spool_full"), small.Empty())
	}
}

func fileSize(t *testing.T, p string) int {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Size())
}

// truncate cuts delta bytes off the end of p (delta < 0).
func truncate(t *testing.T, p string, delta int64) {
	t.Helper()
	if err := os.Truncate(p, int64(fileSize(t, p))+delta); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, p string, off int64) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x40
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
