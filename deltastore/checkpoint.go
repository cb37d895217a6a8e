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
	"os"
	"path/filepath"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// The checkpoint file, version 1, all integers little-endian:
//
//	header, 40 bytes:
//	  0  magic "NSDELTA\n"
//	  8  version uint16 = 1
//	 10  flags uint16: bit 0 = final (written by Close after the last Update)
//	 12  record size uint32 = 24
//	 16  written at, Unix milliseconds int64 (when the state was current)
//	 24  record count uint64
//	 32  CRC-32C (Castagnoli) of the body followed by header bytes 0..31
//	 36  reserved uint32 = 0
//	body: count records of 24 bytes:
//	  key uint64, value float64 bits, last observation uint32 Unix seconds,
//	  created uint32 Unix seconds (0 = unknown)
//
// The count and checksum sit in the header although they are known only
// after the body: the writer fills them in last, before the fsync and rename
// that make the file visible.
const (
	fileName   = "delta.ckpt"
	magic      = "NSDELTA\n"
	version    = 1
	headerSize = 40
	recordSize = 24
	flagFinal  = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	checkpointsTotal      = metrics.NewCounter(`nodescraper_delta_checkpoints_total`)
	checkpointErrorsTotal = metrics.NewCounter(`nodescraper_delta_checkpoint_errors_total`)
	checkpointDuration    = metrics.NewHistogram(`nodescraper_delta_checkpoint_duration_seconds`)
	checkpointSize        = metrics.NewGauge(`nodescraper_delta_checkpoint_size_bytes`, nil)
	checkpointLast        = metrics.NewGauge(`nodescraper_delta_checkpoint_last_success_timestamp_seconds`, nil)
	restoredSeries        = metrics.NewGauge(`nodescraper_delta_restored_series`, nil)
	restoreOutcomes       = map[string]*metrics.Gauge{}
)

// Restore outcomes, also the label values of nodescraper_delta_restore_outcome.
const (
	OutcomeOK      = "ok"      // the final checkpoint of a clean shutdown
	OutcomeUnclean = "unclean" // a periodic checkpoint: the previous agent was killed
	OutcomeNone    = "none"    // no checkpoint (first start, or no state directory)
	OutcomeCorrupt = "corrupt" // truncated, damaged, foreign or of an unknown version
	OutcomeTooOld  = "too_old" // older than MaxAge
)

func init() {
	for _, o := range []string{OutcomeOK, OutcomeUnclean, OutcomeNone, OutcomeCorrupt, OutcomeTooOld} {
		restoreOutcomes[o] = metrics.NewGauge(`nodescraper_delta_restore_outcome{outcome="`+o+`"}`, nil)
	}
}

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
	for o, g := range restoreOutcomes {
		g.Set(b2f(o == r.Outcome))
	}
	restoredSeries.Set(float64(r.Series))
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
	r.Series, r.Skipped, err = s.load(bufio.NewReaderSize(f, 1<<16), h.count)
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
	count     uint64
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
	switch body := uint64(fi.Size() - headerSize); {
	case h.count > body/recordSize:
		return h, 0, fmt.Errorf("truncated: %d bytes hold %d of its %d series", fi.Size(), body/recordSize, h.count)
	case body != h.count*recordSize:
		return h, 0, fmt.Errorf("%d stray bytes after its %d series", body-h.count*recordSize, h.count)
	}
	if binary.LittleEndian.Uint32(hb[36:]) != 0 {
		return h, 0, errors.New("reserved header bytes are not zero")
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

// load inserts count records from r, skipping stale series and those beyond
// MaxSeries.
func (s *Store) load(r io.Reader, count uint64) (loaded, skipped int, err error) {
	// Size the shards for what comes rather than growing them step by step:
	// faster, and a map sized once is fuller than one that doubled. count is
	// bounded by the file size verify checked.
	hint := int(min(count, uint64(s.cfg.MaxSeries))/numShards) + 1
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.m = make(map[uint64]state, hint)
		sh.mu.Unlock()
	}
	cutoff := s.staleCutoff()
	var rec [recordSize]byte
	for range count {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			return loaded, skipped, err
		}
		key := binary.LittleEndian.Uint64(rec[0:])
		st := state{
			last:    math.Float64frombits(binary.LittleEndian.Uint64(rec[8:])),
			ts:      binary.LittleEndian.Uint32(rec[16:]),
			created: binary.LittleEndian.Uint32(rec[20:]),
		}
		sh := &s.shards[key%numShards]
		sh.mu.Lock()
		full := len(sh.m) >= s.maxPerShard
		if st.ts >= cutoff && !full {
			sh.m[key] = st
		}
		sh.mu.Unlock()
		if st.ts < cutoff || full {
			skipped++
			continue
		}
		loaded++
	}
	seriesGauge.Add(float64(loaded))
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
		checkpointErrorsTotal.Inc()
		return st, fmt.Errorf("delta checkpoint in %s: %w", s.cfg.Dir, err)
	}
	st.Duration = time.Since(start)
	checkpointsTotal.Inc()
	checkpointDuration.Update(st.Duration.Seconds())
	checkpointSize.Set(float64(st.Bytes))
	checkpointLast.Set(float64(time.Now().UnixMilli()) / 1000)
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
	cutoff := s.staleCutoff()
	crc := uint32(0)
	count := uint64(0)
	for i := range s.shards {
		sh := &s.shards[i]
		buf := s.scratch[:0]
		sh.mu.Lock()
		for k, v := range sh.m {
			if v.ts < cutoff {
				continue // evicted at the next sweep; not worth restoring
			}
			buf = binary.LittleEndian.AppendUint64(buf, k)
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v.last))
			buf = binary.LittleEndian.AppendUint32(buf, v.ts)
			buf = binary.LittleEndian.AppendUint32(buf, v.created)
		}
		sh.mu.Unlock()
		s.scratch = buf
		crc = crc32.Update(crc, castagnoli, buf)
		count += uint64(len(buf) / recordSize)
		if _, err := w.Write(buf); err != nil {
			return st, err
		}
	}
	if err := w.Flush(); err != nil {
		return st, err
	}
	h := header{writtenAt: writtenAt, count: count}
	if final {
		h.flags = flagFinal
	}
	hb = h.encode(crc)
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
	return CheckpointStats{Series: int(count), Bytes: headerSize + int64(count)*recordSize}, nil
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
