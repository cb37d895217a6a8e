package spool

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeSegment writes a segment file of seq holding recs, as Append does.
func writeSegment(t *testing.T, dir string, seq uint64, recs func(yield func(Record) bool)) string {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("%020d%s", seq, suffix))
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	w.WriteString(magic)
	for r := range recs {
		code, err := encodingCode(r.Encoding)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeRecord(w, code, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOversizedSegmentRefused: a segment file larger than any the writer
// makes (here 74 MiB of well-formed 1 MiB records, past the default 8 MiB
// segments and 64 MiB records) is refused unread at Open, with an error
// naming it, and removed; the spool goes on with the other segments.
// Before the bound the reader held all 74 MiB of it in memory.
func TestOversizedSegmentRefused(t *testing.T) {
	dir := t.TempDir()
	body := bytes.Repeat([]byte{1}, 1<<20)
	big := writeSegment(t, dir, 3, func(yield func(Record) bool) {
		for i := range 74 {
			if !yield(Record{Body: body, Encoding: "zstd1", Raw: 1 << 21, Points: 100, MinTS: int64(i)}) {
				return
			}
		}
	})
	want := []Record{rec(1, 100), rec(2, 200)}
	writeSegment(t, dir, 5, func(yield func(Record) bool) {
		for _, r := range want {
			yield(r)
		}
	})
	var log bytes.Buffer
	d := &drops{}
	s, err := Open(Config{Dir: dir, Dropped: d.add, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := s.Segments(); n != 1 {
		t.Fatalf("%d segments taken, want 1 (the oversized one refused)", n)
	}
	if !strings.Contains(log.String(), big) || !strings.Contains(log.String(), "refused") {
		t.Errorf("log does not name the refused segment %s:\n%s", big, log.String())
	}
	if _, err := os.Stat(big); !os.IsNotExist(err) {
		t.Errorf("refused segment still there: %v", err)
	}
	checkRecords(t, readAll(t, s), want)
}

// TestSegmentGrownWhileOpen: a segment that grows past the bound after
// Open is refused by Next, unread, with an error naming it; its points are
// reported lost and the next segment is read.
func TestSegmentGrownWhileOpen(t *testing.T) {
	dir := t.TempDir()
	d := &drops{}
	var refused []string
	s, err := Open(Config{Dir: dir, SegmentBytes: 1 << 10, MaxRecord: 1 << 10, Dropped: d.add,
		Refused: func(f string) { refused = append(refused, f) }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var want []Record
	for i := range 6 {
		r := rec(i, 400)
		want = append(want, r)
		if err := s.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if len(files) < 2 {
		t.Fatalf("%d segments", len(files))
	}
	first := files[0]
	if err := os.Truncate(first, s.maxSegment()+1); err != nil {
		t.Fatal(err)
	}
	g, err := s.Next()
	if err == nil || !strings.Contains(err.Error(), first) {
		t.Fatalf("Next: %v, %+v; want an error naming %s", err, g, first)
	}
	if len(refused) != 1 || refused[0] != first || d.get("spool_corrupt") != want[0].Points+want[1].Points {
		t.Errorf("refused %q, %d points reported lost", refused, d.get("spool_corrupt"))
	}
	checkRecords(t, readAll(t, s), want[2:])
}
