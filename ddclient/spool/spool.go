package spool

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Endpoint is the intake API a payload was made for: a payload is posted
// where its format is read, whatever the sender's setting is when it is
// read back.
type Endpoint uint8

// Endpoints.
const (
	SeriesV2 Endpoint = iota // /api/v2/series, JSON
	SeriesV3                 // /api/intake/metrics/v3/series, columnar protobuf

	numEndpoints = iota
)

// Record is one compressed payload with what the sender needs to post or
// drop it.
type Record struct {
	Body     []byte
	Encoding string // Content-Encoding, "" for none
	Endpoint Endpoint
	Raw      int // uncompressed size
	Points   int
	MinTS    int64 // oldest point, Unix seconds
}

// Config configures a Spool.
type Config struct {
	// Dir holds the segment files; it is created if missing.
	Dir string
	// MaxBytes bounds the files' total size; the oldest segments are deleted
	// past it. Default 512 MiB.
	MaxBytes int64
	// SegmentBytes is the size at which the open segment is rotated.
	// Default 8 MiB (less when MaxBytes is small).
	SegmentBytes int64
	// MaxRecord is the largest body the writer appends (the sender's
	// largest payload); a larger one is dropped as "spool_full". Default
	// 64 MiB. With SegmentBytes it bounds the segments a reader takes (see
	// maxSegment).
	MaxRecord int
	// Dropped is told the points of records lost: segments deleted for the
	// byte bound ("spool_full") or unreadable ones ("spool_corrupt").
	Dropped func(points int, reason string)
	// Refused is told each segment file refused unread because it is
	// larger than any segment the writer makes (see maxSegment).
	Refused func(file string)
	Logger  *slog.Logger
}

// segment is one file: sequence number, size, and the points it holds.
type segment struct {
	seq    uint64
	bytes  int64
	points int
	recs   int
}

// Spool is safe for concurrent use.
type Spool struct {
	cfg Config

	mu     sync.Mutex
	segs   []*segment // oldest first; the last is open when w != nil
	w      *os.File
	bw     *bufio.Writer
	total  int64
	points int
	next   uint64
	// reading marks segments handed to a reader and not yet finished.
	reading map[uint64]bool
	closed  bool
}

const (
	magic     = "NSSPOOL1"
	suffix    = ".seg"
	recHeader = 4 + 4 + 1 + 8 + 4 + 4 // length, crc, encoding | endpoint<<4, minTS, points, raw
	// maxRecord bounds a record's body length read back: a corrupt length
	// must not make the reader allocate gigabytes.
	maxRecord = 64 << 20
	// defaultSegmentBytes is SegmentBytes' default.
	defaultSegmentBytes = 8 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encodings are stored as one byte.
var encodings = []string{"", "zstd1", "gzip", "deflate", "zstd"}

func encodingCode(s string) (byte, error) {
	if i := slices.Index(encodings, s); i >= 0 {
		return byte(i), nil
	}
	return 0, fmt.Errorf("spool: unknown encoding %q", s)
}

// Open opens the spool in cfg.Dir, taking the segments a previous process
// left there (they are read first, oldest first).
func Open(cfg Config) (*Spool, error) {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 512 << 20
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = defaultSegmentBytes
	}
	if cfg.MaxRecord <= 0 || cfg.MaxRecord > maxRecord {
		cfg.MaxRecord = maxRecord
	}
	cfg.SegmentBytes = max(min(cfg.SegmentBytes, cfg.MaxBytes/4), 1<<10)
	if cfg.Dropped == nil {
		cfg.Dropped = func(int, string) {}
	}
	if cfg.Refused == nil {
		cfg.Refused = func(string) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool %s: %w", cfg.Dir, err)
	}
	s := &Spool{cfg: cfg, reading: map[uint64]bool{}}
	ents, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", cfg.Dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			_ = os.Remove(filepath.Join(cfg.Dir, name))
			continue
		}
		num, ok := strings.CutSuffix(name, suffix)
		if !ok || e.IsDir() {
			continue
		}
		seq, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		seg, err := s.scan(seq)
		if err != nil || seg.recs == 0 {
			if err != nil && !errors.Is(err, errRefused) {
				cfg.Logger.Warn("spool: unreadable segment removed", "segment", s.path(seq), "err", err)
			}
			_ = os.Remove(s.path(seq))
			continue
		}
		s.segs = append(s.segs, seg)
		s.total += seg.bytes
		s.points += seg.points
		s.next = max(s.next, seq+1)
	}
	slices.SortFunc(s.segs, func(a, b *segment) int { return cmp.Compare(a.seq, b.seq) })
	if s.next == 0 {
		s.next = 1
	}
	return s, nil
}

// maxSegment is the largest segment file the writer makes: it rotates a
// segment before a record would take it past SegmentBytes, so a segment
// holds at most SegmentBytes, or one record of at most MaxRecord alone. The
// default SegmentBytes counts too, for segments a previous process wrote.
// A larger file is not a segment of ours (a corrupt or planted file): it is
// refused unread, since a reader holds a segment's records in memory.
func (s *Spool) maxSegment() int64 {
	return max(s.cfg.SegmentBytes, defaultSegmentBytes) + int64(len(magic)+recHeader+s.cfg.MaxRecord)
}

// refuse reports a segment file larger than maxSegment.
func (s *Spool) refuse(seq uint64, size int64) error {
	err := fmt.Errorf("spool: segment %s has %d bytes, more than the %d a segment can have: %w", s.path(seq), size, s.maxSegment(), errRefused)
	s.cfg.Logger.Error("spool: segment larger than the writer makes, refused unread and removed", "segment", s.path(seq), "bytes", size, "max_bytes", s.maxSegment())
	s.cfg.Refused(s.path(seq))
	return err
}

func (s *Spool) path(seq uint64) string {
	return filepath.Join(s.cfg.Dir, fmt.Sprintf("%020d%s", seq, suffix))
}

// scan counts the whole records of a segment left by a previous process.
func (s *Spool) scan(seq uint64) (*segment, error) {
	f, err := os.Open(s.path(seq))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > s.maxSegment() {
		return nil, s.refuse(seq, st.Size())
	}
	seg := &segment{seq: seq, bytes: st.Size()}
	err = readRecords(bufio.NewReader(f), func(r Record) {
		seg.points += r.Points
		seg.recs++
	})
	if err != nil && seg.recs == 0 {
		return nil, err
	}
	if err != nil {
		s.cfg.Logger.Warn("spool: segment ends in a torn record; its whole records are kept", "segment", s.path(seq), "records", seg.recs, "err", err)
	}
	return seg, nil
}

// Bytes is the spool's size on disk; Points the points it holds.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Points is the number of points in the spool, segments being read included.
func (s *Spool) Points() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.points
}

// Segments is the number of segment files.
func (s *Spool) Segments() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.segs)
}

// Empty reports whether no record waits to be read (segments being read by
// a caller do not count).
func (s *Spool) Empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.segs {
		if !s.reading[seg.seq] && seg.recs > 0 {
			return false
		}
	}
	return true
}

// Append writes records to the open segment, rotating it at its size cap
// and deleting the oldest segments past the byte bound. The records are in
// the file when Append returns, so a killed process loses none of them;
// they are synced to the disk when the segment rotates and on Sync, so a
// crashed machine may lose the open segment's tail.
func (s *Spool) Append(recs ...Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("spool: closed")
	}
	for _, r := range recs {
		code, err := encodingCode(r.Encoding)
		if err != nil {
			return err
		}
		if r.Endpoint >= numEndpoints {
			return fmt.Errorf("spool: unknown endpoint %d", r.Endpoint)
		}
		size := int64(recHeader + len(r.Body))
		if size > s.cfg.MaxBytes || len(r.Body) > s.cfg.MaxRecord {
			s.cfg.Dropped(r.Points, "spool_full")
			continue
		}
		if s.w != nil && s.segs[len(s.segs)-1].bytes+size > s.cfg.SegmentBytes {
			if err := s.rotateLocked(); err != nil {
				return err
			}
		}
		s.makeRoomLocked(size)
		if s.w == nil {
			if err := s.createLocked(); err != nil {
				return err
			}
		}
		if err := writeRecord(s.bw, code, r); err != nil {
			return fmt.Errorf("spool %s: %w", s.cfg.Dir, err)
		}
		seg := s.segs[len(s.segs)-1]
		seg.bytes += size
		seg.points += r.Points
		seg.recs++
		s.total += size
		s.points += r.Points
	}
	// Hand the records to the kernel: a killed process then loses none.
	if s.bw != nil {
		if err := s.bw.Flush(); err != nil {
			return fmt.Errorf("spool %s: %w", s.cfg.Dir, err)
		}
	}
	return nil
}

// makeRoomLocked deletes the oldest segments until size more bytes fit,
// never the open one or one being read.
func (s *Spool) makeRoomLocked(size int64) {
	for s.total+size > s.cfg.MaxBytes {
		i := slices.IndexFunc(s.segs, func(seg *segment) bool {
			return !s.reading[seg.seq] && !(s.w != nil && seg == s.segs[len(s.segs)-1])
		})
		if i < 0 {
			return
		}
		seg := s.segs[i]
		if err := os.Remove(s.path(seg.seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.cfg.Logger.Error("spool: cannot delete the oldest segment", "segment", s.path(seg.seq), "err", err)
			return
		}
		s.segs = slices.Delete(s.segs, i, i+1)
		s.total -= seg.bytes
		s.points -= seg.points
		s.cfg.Dropped(seg.points, "spool_full")
		s.cfg.Logger.Warn("spool full: dropped the oldest segment", "points", seg.points, "bytes", seg.bytes, "max_bytes", s.cfg.MaxBytes)
	}
}

func (s *Spool) createLocked() error {
	seq := s.next
	s.next++
	f, err := os.OpenFile(s.path(seq), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("spool %s: %w", s.cfg.Dir, err)
	}
	s.w = f
	s.bw = bufio.NewWriterSize(f, 256<<10)
	if _, err := s.bw.WriteString(magic); err != nil {
		return fmt.Errorf("spool %s: %w", s.cfg.Dir, err)
	}
	s.segs = append(s.segs, &segment{seq: seq, bytes: int64(len(magic))})
	s.total += int64(len(magic))
	return nil
}

// rotateLocked syncs and closes the open segment.
func (s *Spool) rotateLocked() error {
	if s.w == nil {
		return nil
	}
	err := s.bw.Flush()
	if err == nil {
		err = s.w.Sync()
	}
	if cerr := s.w.Close(); err == nil {
		err = cerr
	}
	s.w, s.bw = nil, nil
	if err != nil {
		return fmt.Errorf("spool %s: %w", s.cfg.Dir, err)
	}
	return nil
}

// Sync makes every appended record durable.
func (s *Spool) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return nil
	}
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("spool %s: %w", s.cfg.Dir, err)
	}
	if err := s.w.Sync(); err != nil {
		return fmt.Errorf("spool %s: %w", s.cfg.Dir, err)
	}
	return nil
}

// Close syncs and closes the open segment; the spool's files stay for the
// next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.rotateLocked()
}

// Segment is a segment handed to a reader.
type Segment struct {
	seq     uint64
	Records []Record
}

// Next returns the oldest segment not being read, with its records (the
// open segment is rotated first when it is the only one left), or nil when
// nothing waits. The segment stays on disk until Done.
func (s *Spool) Next() (*Segment, error) {
	s.mu.Lock()
	var seg *segment
	for _, g := range s.segs {
		if !s.reading[g.seq] && g.recs > 0 {
			seg = g
			break
		}
	}
	if seg == nil {
		s.mu.Unlock()
		return nil, nil
	}
	if s.w != nil && seg == s.segs[len(s.segs)-1] {
		if err := s.rotateLocked(); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	s.reading[seg.seq] = true
	s.mu.Unlock()

	f, err := os.Open(s.path(seg.seq))
	if err != nil {
		s.drop(seg, "spool_corrupt")
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() > s.maxSegment() {
		// Grown or replaced since Open: not read into memory.
		s.drop(seg, "spool_corrupt")
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		return nil, s.refuse(seg.seq, st.Size())
	}
	out := &Segment{seq: seg.seq}
	// Limited as well: the file may grow while it is read.
	rerr := readRecords(bufio.NewReaderSize(io.LimitReader(f, s.maxSegment()), 256<<10), func(r Record) {
		out.Records = append(out.Records, r)
	})
	got := 0
	for _, r := range out.Records {
		got += r.Points
	}
	if rerr != nil {
		s.cfg.Logger.Warn("spool: segment ends in a torn record", "segment", s.path(seg.seq), "records", len(out.Records), "err", rerr)
	}
	if lost := seg.points - got; lost > 0 {
		s.cfg.Dropped(lost, "spool_corrupt")
	}
	return out, nil
}

// Done deletes a segment returned by Next: the caller has sent, dropped or
// re-appended every one of its records.
func (s *Spool) Done(g *Segment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.segs, func(seg *segment) bool { return seg.seq == g.seq })
	delete(s.reading, g.seq)
	if i < 0 {
		return nil
	}
	seg := s.segs[i]
	s.segs = slices.Delete(s.segs, i, i+1)
	s.total -= seg.bytes
	s.points -= seg.points
	if err := os.Remove(s.path(seg.seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

func (s *Spool) drop(seg *segment, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.reading, seg.seq)
	if i := slices.Index(s.segs, seg); i >= 0 {
		s.segs = slices.Delete(s.segs, i, i+1)
		s.total -= seg.bytes
		s.points -= seg.points
	}
	_ = os.Remove(s.path(seg.seq))
	s.cfg.Dropped(seg.points, reason)
}

// writeRecord writes one record: its length and CRC-32C, then the header
// fields and the body the CRC covers.
func writeRecord(w *bufio.Writer, code byte, r Record) error {
	var h [recHeader]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(r.Body)))
	h[8] = code | byte(r.Endpoint)<<4
	binary.LittleEndian.PutUint64(h[9:], uint64(r.MinTS))
	binary.LittleEndian.PutUint32(h[17:], uint32(r.Points))
	binary.LittleEndian.PutUint32(h[21:], uint32(r.Raw))
	crc := crc32.Update(crc32.Checksum(h[8:], castagnoli), castagnoli, r.Body)
	binary.LittleEndian.PutUint32(h[4:], crc)
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(r.Body)
	return err
}

var (
	errTorn    = errors.New("torn or corrupt record")
	errRefused = errors.New("larger than a segment can be")
)

// readRecords calls fn for each whole record of a segment and returns nil at
// a clean end, or the reason it stopped early.
func readRecords(r *bufio.Reader, fn func(Record)) error {
	var m [len(magic)]byte
	if _, err := io.ReadFull(r, m[:]); err != nil || string(m[:]) != magic {
		return fmt.Errorf("%w: bad segment header", errTorn)
	}
	for {
		var h [recHeader]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%w: %v", errTorn, err)
		}
		n := binary.LittleEndian.Uint32(h[0:])
		if n > maxRecord || int(h[8]&0x0f) >= len(encodings) || h[8]>>4 >= numEndpoints {
			return fmt.Errorf("%w: bad header", errTorn)
		}
		body, err := readBody(r, int(n))
		if err != nil {
			return fmt.Errorf("%w: %v", errTorn, err)
		}
		crc := crc32.Update(crc32.Checksum(h[8:], castagnoli), castagnoli, body)
		if crc != binary.LittleEndian.Uint32(h[4:]) {
			return fmt.Errorf("%w: checksum mismatch", errTorn)
		}
		fn(Record{
			Body: body, Encoding: encodings[h[8]&0x0f], Endpoint: Endpoint(h[8] >> 4),
			MinTS: int64(binary.LittleEndian.Uint64(h[9:])), Points: int(binary.LittleEndian.Uint32(h[17:])), Raw: int(binary.LittleEndian.Uint32(h[21:])),
		})
	}
}

// readBody reads a record's body of n bytes. Past 1 MiB the buffer grows
// with what arrives rather than by the length the header claims: a torn or
// corrupt length then costs what the file holds, not maxRecord.
func readBody(r io.Reader, n int) ([]byte, error) {
	if n <= 1<<20 {
		body := make([]byte, n)
		_, err := io.ReadFull(r, body)
		return body, err
	}
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf.Bytes(), nil
}
