package spool

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// segmentBytes returns a segment file holding recs, as Append writes it.
func segmentBytes(t testing.TB, recs ...Record) []byte {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	w.WriteString(magic)
	for _, r := range recs {
		code, err := encodingCode(r.Encoding)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeRecord(w, code, r); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Flush()
	return buf.Bytes()
}

// FuzzReadRecords reads arbitrary bytes as a segment left on disk: the
// reader never panics, returns only records whose bodies the bytes hold,
// allocates in proportion to the bytes (a corrupt length must not cost
// 64 MiB), and a spool opened on such a file hands out exactly the records
// the reader finds, then deletes it.
func FuzzReadRecords(f *testing.F) {
	one := Record{Body: []byte("payload"), Encoding: "zstd1", Raw: 100, Points: 3, MinTS: 1636629071}
	two := Record{Body: bytes.Repeat([]byte{7}, 300), Encoding: "gzip", Raw: 900, Points: 10, MinTS: 1}
	whole := segmentBytes(f, one, two)
	f.Add(whole)
	f.Add(whole[:len(whole)-5])                               // torn
	f.Add([]byte(magic))                                      // empty
	huge := append([]byte(magic), make([]byte, recHeader)...) // a 64 MiB length, then nothing
	huge[len(magic)+3] = 0x03
	huge[len(magic)], huge[len(magic)+1], huge[len(magic)+2] = 0xff, 0xff, 0xff
	f.Add(huge)
	corrupt := bytes.Clone(whole)
	corrupt[len(magic)+10] ^= 1
	f.Add(corrupt)
	f.Fuzz(func(t *testing.T, data []byte) {
		var recs []Record
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		err := readRecords(bufio.NewReaderSize(bytes.NewReader(data), 4096), func(r Record) { recs = append(recs, r) })
		runtime.ReadMemStats(&ms)
		if alloc := ms.TotalAlloc - before; alloc > uint64(8*len(data))+1<<20 {
			t.Fatalf("reading %d bytes allocated %d", len(data), alloc)
		}
		size := len(magic)
		for _, r := range recs {
			size += recHeader + len(r.Body)
		}
		if len(recs) > 0 && size > len(data) {
			t.Fatalf("%d records of %d bytes from %d bytes", len(recs), size, len(data))
		}
		if err == nil && size != len(data) {
			t.Fatalf("clean end after %d of %d bytes", size, len(data))
		}

		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d%s", 7, suffix)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		sp, err := Open(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		points := 0
		for _, r := range recs {
			points += r.Points
		}
		if sp.Points() != points {
			t.Fatalf("spool counts %d points, the reader %d", sp.Points(), points)
		}
		g, err := sp.Next()
		if err != nil {
			t.Fatal(err)
		}
		if g == nil {
			if len(recs) != 0 {
				t.Fatalf("%d records, no segment", len(recs))
			}
			return
		}
		if len(g.Records) != len(recs) {
			t.Fatalf("segment of %d records, the reader found %d", len(g.Records), len(recs))
		}
		if err := sp.Done(g); err != nil {
			t.Fatal(err)
		}
		if !sp.Empty() || sp.Points() != 0 || sp.Bytes() != 0 {
			t.Fatalf("after Done: empty %v, %d points, %d bytes", sp.Empty(), sp.Points(), sp.Bytes())
		}
	})
}

// FuzzRoundTrip appends a record, closes the spool and opens it again: the
// next process reads back the same record.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("payload"), uint8(1), 100, 3, int64(1636629071))
	f.Add([]byte{}, uint8(0), 0, 0, int64(-1))
	f.Fuzz(func(t *testing.T, body []byte, enc uint8, raw, points int, minTS int64) {
		r := Record{Body: body, Encoding: encodings[int(enc)%len(encodings)], Raw: int(uint32(raw)), Points: int(uint32(points)), MinTS: minTS}
		dir := t.TempDir()
		sp, err := Open(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := sp.Append(r); err != nil {
			t.Fatal(err)
		}
		if err := sp.Close(); err != nil {
			t.Fatal(err)
		}
		sp, err = Open(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		g, err := sp.Next()
		if err != nil || g == nil || len(g.Records) != 1 {
			t.Fatalf("next: %v, %+v", err, g)
		}
		got := g.Records[0]
		if !bytes.Equal(got.Body, r.Body) || got.Encoding != r.Encoding || got.Raw != r.Raw || got.Points != r.Points || got.MinTS != r.MinTS {
			t.Fatalf("read back %+v, wrote %+v", got, r)
		}
	})
}
