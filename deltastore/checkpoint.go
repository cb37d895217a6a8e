package deltastore

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// The checkpoint file, version 2, all integers little-endian:
//
//	header, 40 bytes:
//	  0  magic "NSDELTA\n"
//	  8  version uint16 = 2
//	 10  flags uint16: bit 0 = final (written by Close after the last Update)
//	 12  record size uint32 = 24
//	 16  written at, Unix milliseconds int64 (when the state was current)
//	 24  series record count uint64
//	 32  CRC-32C (Castagnoli) of the body followed by header bytes 0..31
//	 36  target record count uint32
//	body: per target, a target record then its series records, 24 bytes each:
//	  target: seed uint64, last successful scrape Unix ms int64, series count uint64
//	  series: raw series hash uint64, value float64 bits,
//	          last observation uint32 Unix seconds, created uint32 Unix seconds (0 = unknown)
//
// The counts and checksum sit in the header although they are known only
// after the body: the writer fills them in last, before the fsync and rename
// that make the file visible. A series record holding what Update never
// stores (a NaN, infinite or negative value; a time of 0 or 2^32-1) is not
// the writer's, and makes the file corrupt like a wrong count. Version 1 (one flat list keyed by a hash that
// mixed target and series) cannot be split back into targets and is refused.
const (
	fileName   = "delta.ckpt"
	magic      = "NSDELTA\n"
	version    = 2
	headerSize = 40
	recordSize = 24
	flagFinal  = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Restore outcomes, also the label values of nodescraper_delta_restore_outcome.
const (
	OutcomeOK      = "ok"      // the final checkpoint of a clean shutdown
	OutcomeUnclean = "unclean" // a periodic checkpoint: the previous agent was killed
	OutcomeNone    = "none"    // no checkpoint (first start, or no state directory)
	OutcomeCorrupt = "corrupt" // truncated, damaged, foreign or of an unknown version
	OutcomeTooOld  = "too_old" // older than MaxAge
)

// Restored says what Restore found.
type Restored struct {
	Outcome string
	Series  int           // series restored
	Skipped int           // series not restored: stale, or beyond MaxSeries
	Age     time.Duration // of the checkpoint
	Reason  error         // why a checkpoint was corrupt
}

// CheckpointStats describes one written checkpoint.
type CheckpointStats struct {
	Series   int
	Bytes    int64
	Duration time.Duration
}

var errClosed = errors.New("delta store closed")

// errLayout is a checksummed checkpoint whose records do not add up: not
// what the writer writes, so corrupt.
var errLayout = errors.New("inconsistent records")

// Restore takes the state directory and loads the checkpoint in it into the
// empty store. It waits while another agent holds the directory (an
// overlapping DaemonSet rollout) until that one exits or ctx ends. A corrupt,
// foreign or too old checkpoint is logged in one line and the store starts
// empty; the error is only for a state directory that cannot be used (or ctx
// ending first).
func (s *Store) Restore(ctx context.Context) (Restored, error) {
	r, err := s.restore(ctx)
	if err != nil {
		return r, err
	}
	for o, g := range s.m.outcomes {
		g.Set(b2f(o == r.Outcome))
	}
	s.m.restoredSeries.Set(float64(r.Series))
	log := s.cfg.Logger
	path := filepath.Join(s.cfg.Dir, fileName)
	switch r.Outcome {
	case OutcomeOK:
		log.Info("delta state restored", "path", path, "series", r.Series, "skipped", r.Skipped, "age", r.Age.Round(time.Millisecond))
	case OutcomeUnclean:
		log.Warn("delta state restored from a periodic checkpoint: the previous agent did not shut down cleanly, so increments it sent after that checkpoint are counted again",
			"path", path, "series", r.Series, "skipped", r.Skipped, "age", r.Age.Round(time.Millisecond))
	case OutcomeTooOld:
		log.Warn("delta checkpoint older than the maximum age, not restored: every series starts again from a baseline", "path", path, "age", r.Age.Round(time.Second), "max_age", s.cfg.MaxAge)
	case OutcomeCorrupt:
		log.Error("delta checkpoint unusable, starting empty (kept as "+fileName+".corrupt)", "path", path, "reason", r.Reason)
	case OutcomeNone:
		if s.cfg.Dir == "" {
			log.Info("delta state is kept in memory only")
		} else {
			log.Info("no delta checkpoint, starting empty", "path", path)
		}
	}
	return r, nil
}

func (s *Store) restore(ctx context.Context) (Restored, error) {
	if s.cfg.Dir == "" {
		return Restored{Outcome: OutcomeNone}, nil
	}
	if s.Len() != 0 {
		return Restored{}, errors.New("delta store: Restore on a store that already holds series")
	}
	if err := os.MkdirAll(s.cfg.Dir, 0o700); err != nil {
		return Restored{}, err
	}
	unlock, err := lockDir(ctx, s.cfg.Dir, s.cfg.Logger)
	if err != nil {
		return Restored{}, fmt.Errorf("lock: %w", err)
	}
	s.ckptMu.Lock()
	s.unlock = unlock
	s.ckptMu.Unlock()
	if err := removeTemps(s.cfg.Dir); err != nil {
		return Restored{}, err
	}
	if err := probeWritable(s.cfg.Dir); err != nil {
		return Restored{}, fmt.Errorf("not writable: %w", err)
	}
	path := filepath.Join(s.cfg.Dir, fileName)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return Restored{Outcome: OutcomeNone}, nil
	}
	if err != nil {
		return Restored{}, err
	}
	defer f.Close()
	h, bodyCRC, err := verify(f)
	if err != nil {
		_ = os.Rename(path, path+".corrupt")
		return Restored{Outcome: OutcomeCorrupt, Reason: err}, nil
	}
	r := Restored{Outcome: OutcomeOK, Age: s.cfg.Now().Sub(time.UnixMilli(h.writtenAt))}
	if h.flags&flagFinal == 0 {
		r.Outcome = OutcomeUnclean
	}
	if r.Age > s.cfg.MaxAge {
		return Restored{Outcome: OutcomeTooOld, Age: r.Age}, nil
	}
	if _, err := f.Seek(headerSize, io.SeekStart); err != nil {
		return Restored{}, err
	}
	r.Series, r.Skipped, err = s.load(bufio.NewReaderSize(f, 1<<16), h)
	if errors.Is(err, errLayout) {
		_ = os.Rename(path, path+".corrupt")
		return Restored{Outcome: OutcomeCorrupt, Reason: err}, nil
	}
	if err != nil {
		// The checksum held, so the file changed under us.
		return Restored{}, fmt.Errorf("delta checkpoint %s: %w", path, err)
	}
	if r.Outcome == OutcomeOK {
		// The restored state now runs on in this agent: should it be killed
		// before its first checkpoint, this file no longer describes what was
		// sent last. Clear its final flag, in place: a 40-byte write within
		// the first sector, and a torn one fails the checksum, which starts
		// the next agent empty rather than counting anything twice.
		if err := clearFinal(f, h, bodyCRC); err != nil {
			s.cfg.Logger.Error("delta checkpoint: cannot mark the restored checkpoint as in use", "path", path, "err", err)
		}
	}
	return r, nil
}

func clearFinal(f *os.File, h header, bodyCRC uint32) error {
	h.flags &^= flagFinal
	hb := h.encode(bodyCRC)
	if _, err := f.WriteAt(hb[:], 0); err != nil {
		return err
	}
	return f.Sync()
}

type header struct {
	flags     uint16
	writtenAt int64
	count     uint64 // series records
	targets   uint32 // target records
}

// encode returns the header of a body whose CRC-32C is bodyCRC.
func (h header) encode(bodyCRC uint32) [headerSize]byte {
	var hb [headerSize]byte
	copy(hb[:], magic)
	binary.LittleEndian.PutUint16(hb[8:], version)
	binary.LittleEndian.PutUint16(hb[10:], h.flags)
	binary.LittleEndian.PutUint32(hb[12:], recordSize)
	binary.LittleEndian.PutUint64(hb[16:], uint64(h.writtenAt))
	binary.LittleEndian.PutUint64(hb[24:], h.count)
	binary.LittleEndian.PutUint32(hb[32:], crc32.Update(bodyCRC, castagnoli, hb[:32]))
	binary.LittleEndian.PutUint32(hb[36:], h.targets)
	return hb
}

// verify checks the whole file against its header and checksum without
// keeping it in memory, and returns the header and the body's CRC-32C.
func verify(f *os.File) (h header, bodyCRC uint32, err error) {
	fi, err := f.Stat()
	if err != nil {
		return h, 0, err
	}
	var hb [headerSize]byte
	if _, err := io.ReadFull(f, hb[:]); err != nil {
		return h, 0, fmt.Errorf("%d bytes, shorter than the %d-byte header", fi.Size(), headerSize)
	}
	if string(hb[:8]) != magic {
		return h, 0, fmt.Errorf("not a nodescraper delta checkpoint (starts with %q)", hb[:8])
	}
	if v := binary.LittleEndian.Uint16(hb[8:]); v != version {
		return h, 0, fmt.Errorf("format version %d, this agent reads version %d", v, version)
	}
	h.flags = binary.LittleEndian.Uint16(hb[10:])
	if rs := binary.LittleEndian.Uint32(hb[12:]); rs != recordSize {
		return h, 0, fmt.Errorf("record size %d, want %d", rs, recordSize)
	}
	h.writtenAt = int64(binary.LittleEndian.Uint64(hb[16:]))
	h.count = binary.LittleEndian.Uint64(hb[24:])
	h.targets = binary.LittleEndian.Uint32(hb[36:])
	body := uint64(fi.Size() - headerSize)
	// The sum of the counts can wrap around: then it is past any file.
	want, carry := bits.Add64(h.count, uint64(h.targets), 0)
	switch {
	case carry != 0:
		return h, 0, fmt.Errorf("truncated: %d bytes hold %d of its %d + %d records", fi.Size(), body/recordSize, h.count, h.targets)
	case want > body/recordSize:
		return h, 0, fmt.Errorf("truncated: %d bytes hold %d of its %d records", fi.Size(), body/recordSize, want)
	case body != want*recordSize:
		return h, 0, fmt.Errorf("%d stray bytes after its %d records", body-want*recordSize, want)
	}
	c := crc32.New(castagnoli)
	if _, err := io.Copy(c, f); err != nil {
		return h, 0, fmt.Errorf("read body: %w", err)
	}
	bodyCRC = c.Sum32()
	sum := crc32.Update(bodyCRC, castagnoli, hb[:32])
	if want := binary.LittleEndian.Uint32(hb[32:]); sum != want {
		return h, 0, fmt.Errorf("checksum %08x, header says %08x", sum, want)
	}
	return h, bodyCRC, nil
}

// load reads the records of h into the pending state, skipping stale series
// and those beyond MaxSeries.
func (s *Store) load(r io.Reader, h header) (loaded, skipped int, err error) {
	defer func() {
		if err != nil {
			s.unreserve(int64(loaded)) // nothing of it is kept
		}
	}()
	cutoff := s.staleCutoff()
	var rec [recordSize]byte
	left := h.count
	pending := map[uint64]*restored{}
	for range h.targets {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			return loaded, skipped, err
		}
		seed := binary.LittleEndian.Uint64(rec[0:])
		lastSuccess := int64(binary.LittleEndian.Uint64(rec[8:]))
		n := binary.LittleEndian.Uint64(rec[16:])
		if n > left {
			return loaded, skipped, fmt.Errorf("%w: target %016x claims %d series, %d left", errLayout, seed, n, left)
		}
		if seconds(lastSuccess) < cutoff {
			// The series of that scrape are as old, and skipped below as
			// stale: kept without them, the last success would make each of
			// them pass for one that appeared since, its whole value sent.
			lastSuccess = 0
		}
		left -= n
		tr := pending[seed]
		if tr == nil {
			tr = &restored{lastSuccess: lastSuccess}
			pending[seed] = tr
		}
		tr.recs = slices.Grow(tr.recs, int(min(n, uint64(s.cfg.MaxSeries))))
		for range n {
			if _, err := io.ReadFull(r, rec[:]); err != nil {
				return loaded, skipped, err
			}
			rc := record{
				hash:    binary.LittleEndian.Uint64(rec[0:]),
				last:    math.Float64frombits(binary.LittleEndian.Uint64(rec[8:])),
				ts:      binary.LittleEndian.Uint32(rec[16:]),
				created: binary.LittleEndian.Uint32(rec[20:]),
			}
			if !(rc.last >= 0 && rc.last <= math.MaxFloat64) || rc.ts == 0 || rc.ts == math.MaxUint32 {
				// What Update refuses to store, the writer cannot have
				// written: restored, it would make a wrong delta.
				return loaded, skipped, fmt.Errorf("%w: target %016x series %016x holds value %v at %d", errLayout, seed, rc.hash, rc.last, rc.ts)
			}
			if rc.ts < cutoff || !s.reserve(1) {
				skipped++
				continue
			}
			tr.recs = append(tr.recs, rc)
			loaded++
		}
		if len(tr.recs) == 0 && tr.lastSuccess == 0 {
			delete(pending, seed) // nothing left to restore
		}
	}
	if left != 0 {
		return loaded, skipped, fmt.Errorf("%w: %d series records belong to no target", errLayout, left)
	}
	s.mu.Lock()
	s.pending = pending
	s.restored = s.cfg.Now()
	s.mu.Unlock()
	return loaded, skipped, nil
}

// Checkpoint writes the state to the state directory now, replacing the
// previous checkpoint atomically. Scrapes go on meanwhile: the state is
// copied one shard at a time.
func (s *Store) Checkpoint() (CheckpointStats, error) {
	return s.write(false, 0)
}

// Close writes the final checkpoint and releases the state directory. Call it
// once every Update has returned (the scrape loops stopped): the checkpoint
// then holds exactly the observations whose deltas were emitted, which is
// what makes the next agent's first deltas the true increase.
func (s *Store) Close() error {
	st, err := s.write(true, 0)
	if err == nil && s.cfg.Dir != "" {
		s.cfg.Logger.Info("final delta checkpoint written", "path", filepath.Join(s.cfg.Dir, fileName),
			"series", st.Series, "bytes", st.Bytes, "duration", st.Duration.Round(time.Microsecond))
	}
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	s.closed = true
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
	if errors.Is(err, errClosed) {
		return nil
	}
	return err
}

// write writes a checkpoint; writtenAt 0 means now.
func (s *Store) write(final bool, writtenAt int64) (CheckpointStats, error) {
	if s.cfg.Dir == "" {
		return CheckpointStats{}, nil
	}
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	if s.closed {
		return CheckpointStats{}, errClosed
	}
	start := time.Now()
	if writtenAt == 0 {
		writtenAt = s.cfg.Now().UnixMilli()
	}
	st, err := s.writeFile(final, writtenAt)
	if err != nil {
		s.m.checkpointErrors.Inc()
		return st, fmt.Errorf("delta checkpoint in %s: %w", s.cfg.Dir, err)
	}
	st.Duration = time.Since(start)
	s.m.checkpoints.Inc()
	s.m.checkpointDuration.Update(st.Duration.Seconds())
	s.m.checkpointSize.Set(float64(st.Bytes))
	s.m.checkpointLast.Set(float64(time.Now().UnixMilli()) / 1000)
	return st, nil
}

// writeFile writes a temporary file in the state directory, syncs it and
// renames it over the checkpoint, then syncs the directory: a crash at any
// point leaves either the old or the new checkpoint, whole.
func (s *Store) writeFile(final bool, writtenAt int64) (st CheckpointStats, err error) {
	f, err := os.CreateTemp(s.cfg.Dir, fileName+".tmp-*")
	if err != nil {
		return st, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, 1<<18)
	var hb [headerSize]byte
	if _, err := w.Write(hb[:]); err != nil {
		return st, err
	}
	body := &bodyWriter{w: w}
	if err := s.writeBody(body); err != nil {
		return st, err
	}
	if err := w.Flush(); err != nil {
		return st, err
	}
	h := header{writtenAt: writtenAt, count: body.count, targets: body.targets}
	if final {
		h.flags = flagFinal
	}
	hb = h.encode(body.crc)
	if _, err := f.WriteAt(hb[:], 0); err != nil {
		return st, err
	}
	if err := f.Sync(); err != nil {
		return st, err
	}
	if err := f.Close(); err != nil {
		return st, err
	}
	if err := os.Rename(f.Name(), filepath.Join(s.cfg.Dir, fileName)); err != nil {
		return st, err
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		return st, err
	}
	return CheckpointStats{Series: int(h.count), Bytes: headerSize + int64(h.count+uint64(h.targets))*recordSize}, nil
}

// bodyWriter writes a checkpoint's body and keeps what its header says of
// it: the records' counts and CRC-32C.
type bodyWriter struct {
	w       *bufio.Writer
	crc     uint32
	count   uint64 // series records
	targets uint32 // target records
}

// target writes one target's records: buf holds a placeholder target record,
// filled in here, then the target's series records.
func (b *bodyWriter) target(seed uint64, lastSuccess int64, buf []byte) error {
	n := uint64(len(buf)/recordSize - 1)
	binary.LittleEndian.PutUint64(buf[0:], seed)
	binary.LittleEndian.PutUint64(buf[8:], uint64(lastSuccess))
	binary.LittleEndian.PutUint64(buf[16:], n)
	b.crc = crc32.Update(b.crc, castagnoli, buf)
	b.count += n
	b.targets++
	_, err := b.w.Write(buf)
	return err
}

// writeBody writes the restored state no target claimed yet, then each
// table's counter state, copied under the table's lock one table at a time.
func (s *Store) writeBody(b *bodyWriter) error {
	cutoff := s.staleCutoff()
	s.mu.Lock()
	tables := make([]*Table, 0, len(s.tables))
	for _, t := range s.tables {
		tables = append(tables, t)
	}
	// Restored state no target claimed yet survives another restart too.
	for seed, r := range s.pending {
		buf := make([]byte, recordSize, recordSize*(1+len(r.recs)))
		for _, rc := range r.recs {
			buf = appendRecord(buf, rc.hash, rc.last, rc.ts, rc.created)
		}
		if err := b.target(seed, r.lastSuccess, buf); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	s.mu.Unlock()
	for _, t := range tables {
		buf := append(s.scratch[:0], make([]byte, recordSize)...)
		t.mu.Lock()
		if t.released {
			t.mu.Unlock()
			continue
		}
		lastSuccess := t.lastSuccess
		for i := range t.slots {
			sl := &t.slots[i]
			if !sl.used || sl.ts == 0 || sl.ts < cutoff {
				continue // no counter state, or evicted at the next sweep
			}
			buf = appendRecord(buf, sl.Hash, sl.last, sl.ts, sl.created)
		}
		t.mu.Unlock()
		s.scratch = buf
		if len(buf) == recordSize && lastSuccess == 0 {
			continue
		}
		if err := b.target(t.seed, lastSuccess, buf); err != nil {
			return err
		}
	}
	return nil
}

func appendRecord(b []byte, hash uint64, last float64, ts, created uint32) []byte {
	b = binary.LittleEndian.AppendUint64(b, hash)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(last))
	b = binary.LittleEndian.AppendUint32(b, ts)
	return binary.LittleEndian.AppendUint32(b, created)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeTemps deletes temporary files a killed agent left mid-checkpoint.
func removeTemps(dir string) error {
	temps, err := filepath.Glob(filepath.Join(dir, fileName+".tmp-*"))
	if err != nil {
		return err
	}
	for _, t := range temps {
		if err := os.Remove(t); err != nil {
			return err
		}
	}
	return nil
}

// probeWritable fails at start, not at the first checkpoint a minute later,
// when the directory is read-only.
func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, fileName+".tmp-probe-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
