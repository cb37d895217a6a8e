package deltastore

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func newClock() *clock { return &clock{t: time.UnixMilli(sec(0))} }

func testStore(t *testing.T, dir string, c *clock, mod ...func(*Config)) *Store {
	t.Helper()
	cfg := Config{Dir: dir, Now: c.now, Logger: slog.New(slog.NewTextHandler(testLog{t}, nil))}
	for _, m := range mod {
		m(&cfg)
	}
	return New(cfg)
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func restore(t *testing.T, s *Store) Restored {
	t.Helper()
	r, err := s.Restore(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// contents returns the store's state, comparable.
func contents(s *Store) map[uint64]state {
	out := map[uint64]state{}
	for i := range s.shards {
		for k, v := range s.shards[i].m {
			out[k] = v
		}
	}
	return out
}

// specFile encodes records exactly as the format comment in checkpoint.go
// describes, independently of the writer, so that the reader is held to the
// documented format and not merely to its own writer.
func specFile(final bool, writtenAt int64, recs []specRecord) []byte {
	var body []byte
	for _, r := range recs {
		body = binary.LittleEndian.AppendUint64(body, r.key)
		body = binary.LittleEndian.AppendUint64(body, math.Float64bits(r.value))
		body = binary.LittleEndian.AppendUint32(body, r.ts)
		body = binary.LittleEndian.AppendUint32(body, r.created)
	}
	h := []byte("NSDELTA\n")
	h = binary.LittleEndian.AppendUint16(h, 1)
	flags := uint16(0)
	if final {
		flags = 1
	}
	h = binary.LittleEndian.AppendUint16(h, flags)
	h = binary.LittleEndian.AppendUint32(h, 24)
	h = binary.LittleEndian.AppendUint64(h, uint64(writtenAt))
	h = binary.LittleEndian.AppendUint64(h, uint64(len(recs)))
	tab := crc32.MakeTable(crc32.Castagnoli)
	h = binary.LittleEndian.AppendUint32(h, crc32.Update(crc32.Checksum(body, tab), tab, h))
	h = binary.LittleEndian.AppendUint32(h, 0)
	return append(h, body...)
}

type specRecord struct {
	key     uint64
	value   float64
	ts      uint32
	created uint32
}

var specRecords = []specRecord{
	{key: 1, value: 0, ts: uint32(sec(-5) / 1000)},
	{key: 0xffff_ffff_ffff_ffff, value: 1e300, ts: uint32(sec(-1) / 1000), created: uint32(sec(-7200) / 1000)},
	{key: 64, value: 12345.5, ts: uint32(sec(0) / 1000), created: 1},
	{key: 0x8000_0000_0000_0001, value: -3, ts: uint32(sec(-3000) / 1000)},
}

func TestRestoreDocumentedFormat(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	if err := os.WriteFile(filepath.Join(dir, "delta.ckpt"), specFile(true, sec(-2), specRecords), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testStore(t, dir, c)
	r := restore(t, s)
	if r.Outcome != OutcomeOK || r.Series != len(specRecords) || r.Age != 2*time.Second {
		t.Fatalf("restore = %+v, want ok with %d series, age 2s", r, len(specRecords))
	}
	got := contents(s)
	for _, rec := range specRecords {
		if st := got[rec.key]; st != (state{last: rec.value, ts: rec.ts, created: rec.created}) {
			t.Errorf("key %x: restored %+v, want %+v", rec.key, st, rec)
		}
	}
}

// TestCheckpointWritesDocumentedFormat compares the writer's file, records
// sorted, with the independent encoding of the same state.
func TestCheckpointWritesDocumentedFormat(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := testStore(t, dir, c)
	for _, r := range specRecords {
		s.shards[r.key%numShards].m[r.key] = state{last: r.value, ts: r.ts, created: r.created}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "delta.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < headerSize {
		t.Fatalf("checkpoint of %d bytes", len(got))
	}
	// Records come in map order: the same records as the spec's, and the
	// whole file, checksum included, is the spec's encoding of them in the
	// writer's order.
	var inOrder []specRecord
	body := got[headerSize:]
	for i := 0; i+recordSize <= len(body); i += recordSize {
		b := body[i:]
		inOrder = append(inOrder, specRecord{
			key:     binary.LittleEndian.Uint64(b),
			value:   math.Float64frombits(binary.LittleEndian.Uint64(b[8:])),
			ts:      binary.LittleEndian.Uint32(b[16:]),
			created: binary.LittleEndian.Uint32(b[20:]),
		})
	}
	sorted, want := slices.Clone(inOrder), slices.Clone(specRecords)
	byKey := func(a, b specRecord) int { return cmpU64(a.key, b.key) }
	slices.SortFunc(want, byKey)
	slices.SortFunc(sorted, byKey)
	if !slices.Equal(sorted, want) {
		t.Fatalf("records:\n%+v\nwant\n%+v", sorted, want)
	}
	if spec := specFile(true, sec(0), inOrder); !bytes.Equal(got, spec) {
		t.Fatalf("file differs from the documented encoding:\n got %x\nwant %x", got[:headerSize], spec[:headerSize])
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestRestoreOutcomes(t *testing.T) {
	good := specFile(true, sec(-10), specRecords[:3])
	flip := func(i int) []byte { b := slices.Clone(good); b[i] ^= 0x04; return b }
	cases := []struct {
		name    string
		file    []byte // nil: no checkpoint
		outcome string
		series  int
		reason  string
	}{
		{"no checkpoint", nil, OutcomeNone, 0, ""},
		{"final checkpoint", good, OutcomeOK, 3, ""},
		{"periodic checkpoint", specFile(false, sec(-10), specRecords[:3]), OutcomeUnclean, 3, ""},
		{"empty checkpoint", specFile(true, sec(-10), nil), OutcomeOK, 0, ""},
		{"too old", specFile(true, sec(-3601), specRecords[:3]), OutcomeTooOld, 0, ""},
		{"one hour is not too old", specFile(true, sec(-3600), specRecords[:1]), OutcomeOK, 1, ""},
		{"empty file", []byte{}, OutcomeCorrupt, 0, "0 bytes, shorter than the 40-byte header"},
		{"foreign file", []byte("# some other program's state, long enough to hold a header\n"), OutcomeCorrupt, 0, `not a nodescraper delta checkpoint (starts with "# some o")`},
		{"newer version", func() []byte { b := slices.Clone(good); b[8] = 2; return b }(), OutcomeCorrupt, 0, "format version 2, this agent reads version 1"},
		{"truncated body", good[:len(good)-5], OutcomeCorrupt, 0, "truncated: 107 bytes hold 2 of its 3 series"},
		{"truncated header", good[:20], OutcomeCorrupt, 0, "20 bytes, shorter than the 40-byte header"},
		{"padded", append(slices.Clone(good), 0), OutcomeCorrupt, 0, "1 stray bytes after its 3 series"},
		{"count beyond the file", func() []byte { b := slices.Clone(good); b[31] = 0x10; return b }(), OutcomeCorrupt, 0, "truncated: 112 bytes hold 3 of its"},
		{"flipped bit in a value", flip(headerSize + 30), OutcomeCorrupt, 0, "checksum"},
		{"flipped bit in the flags", flip(10), OutcomeCorrupt, 0, "checksum"},
		{"flipped bit in the time", flip(17), OutcomeCorrupt, 0, "checksum"},
		{"record size", func() []byte { b := slices.Clone(good); b[12] = 32; return b }(), OutcomeCorrupt, 0, "record size 32, want 24"},
		{"reserved bytes", flip(37), OutcomeCorrupt, 0, "reserved header bytes are not zero"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "delta.ckpt")
			if tc.file != nil {
				if err := os.WriteFile(path, tc.file, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s := testStore(t, dir, newClock())
			r := restore(t, s)
			if r.Outcome != tc.outcome || r.Series != tc.series || s.Len() != tc.series {
				t.Fatalf("restore = %+v, store holds %d; want %s with %d series", r, s.Len(), tc.outcome, tc.series)
			}
			if g := restoreOutcomes[tc.outcome].Get(); g != 1 {
				t.Errorf("outcome gauge %s = %v, want 1", tc.outcome, g)
			}
			if tc.reason != "" && (r.Reason == nil || !strings.Contains(r.Reason.Error(), tc.reason)) {
				t.Fatalf("reason %v, want one containing %q", r.Reason, tc.reason)
			}
			if tc.outcome == OutcomeCorrupt {
				// Kept aside for a human, out of the next start's way.
				if kept, err := os.ReadFile(path + ".corrupt"); err != nil || !bytes.Equal(kept, tc.file) {
					t.Fatalf("corrupt checkpoint not kept aside: %v", err)
				}
				if _, err := os.Stat(path); !os.IsNotExist(err) {
					t.Fatalf("corrupt checkpoint still in place: %v", err)
				}
			}
		})
	}
}

func TestRestoreSkipsStaleAndExcessSeries(t *testing.T) {
	dir := t.TempDir()
	// specRecords[3] was last seen 3000 s ago; with a 30-minute StaleAfter it
	// is not restored.
	if err := os.WriteFile(filepath.Join(dir, "delta.ckpt"), specFile(true, sec(0), specRecords), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testStore(t, dir, newClock(), func(c *Config) { c.StaleAfter = 30 * time.Minute })
	if r := restore(t, s); r.Series != 3 || r.Skipped != 1 {
		t.Fatalf("restore = %+v, want 3 restored, 1 skipped", r)
	}
	if _, _, ok := s.Get(specRecords[3].key); ok {
		t.Fatal("stale series restored")
	}
	s.Close()

	// Keys 1 and 65 share a shard; with one series per shard the second is refused.
	recs := []specRecord{specRecords[0], {key: 65, value: 1, ts: uint32(sec(0) / 1000)}}
	if err := os.WriteFile(filepath.Join(dir, "delta.ckpt"), specFile(true, sec(0), recs), 0o600); err != nil {
		t.Fatal(err)
	}
	s = testStore(t, dir, newClock(), func(c *Config) { c.MaxSeries = numShards })
	if r := restore(t, s); r.Series != 1 || r.Skipped != 1 {
		t.Fatalf("restore = %+v, want 1 restored, 1 skipped", r)
	}
}

// TestRestartRoundTrip checkpoints a store, restores it in a new one, and
// checks that the restored final checkpoint is marked as in use: a kill of
// the new agent before its first checkpoint must not pass for a clean stop.
func TestRestartRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	a := testStore(t, dir, c)
	restore(t, a)
	for k := uint64(0); k < 1000; k++ {
		a.Update(k, Obs{Value: float64(k), TS: sec(-1), Created: sec(-int64(k))})
	}
	a.Put(5000, 42, sec(-1))
	want := contents(a)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := a.Checkpoint(); err == nil {
		t.Fatal("Checkpoint after Close replaced the final checkpoint")
	}

	b := testStore(t, dir, c)
	if r := restore(t, b); r.Outcome != OutcomeOK || r.Series != 1001 {
		t.Fatalf("restore = %+v", r)
	}
	if got := contents(b); !mapsEqual(got, want) {
		t.Fatalf("restored state differs: %d series, want %d", len(got), len(want))
	}
	// b is killed: no Close. The next agent finds the same state, flagged.
	b.unlock()
	c2 := testStore(t, dir, c)
	if r := restore(t, c2); r.Outcome != OutcomeUnclean || r.Series != 1001 || r.Age != time.Duration(0) {
		t.Fatalf("restore after a kill = %+v, want unclean, 1001 series, age kept at 0", r)
	}
}

func mapsEqual(a, b map[uint64]state) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestRestoreRemovesTempFilesAndKeepsCheckpointOnFailure(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	a := testStore(t, dir, c)
	a.Update(1, Obs{Value: 10, TS: sec(0)})
	if _, err := a.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	// A killed agent's half-written temporary file.
	tmp := filepath.Join(dir, "delta.ckpt.tmp-123")
	if err := os.WriteFile(tmp, []byte("NSDELTA\n partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A failed checkpoint (the directory went away) leaves nothing behind.
	broken := testStore(t, filepath.Join(dir, "gone"), c)
	broken.Update(1, Obs{Value: 11, TS: sec(1)})
	if _, err := broken.Checkpoint(); err == nil || !strings.Contains(err.Error(), "delta checkpoint in "+dir+"/gone") {
		t.Fatalf("checkpoint into a missing directory: %v", err)
	}
	b := testStore(t, dir, c)
	if r := restore(t, b); r.Outcome != OutcomeUnclean || r.Series != 1 {
		t.Fatalf("restore = %+v", r)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range left {
		if b := filepath.Base(f); b != "delta.ckpt" && b != "delta.lock" {
			t.Errorf("unexpected file %s in the state directory", b)
		}
	}
}

func TestRestoreErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := testStore(t, filepath.Join(file, "sub"), newClock())
	if _, err := s.Restore(context.Background()); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("state directory below a file: %v", err)
	}
	s = testStore(t, dir, newClock())
	s.Update(1, Obs{Value: 1, TS: sec(0)})
	if _, err := s.Restore(context.Background()); err == nil {
		t.Fatal("Restore into a non-empty store succeeded")
	}
	// No state directory: memory only, nothing written.
	m := New(Config{Logger: slog.New(slog.DiscardHandler)})
	if r, err := m.Restore(context.Background()); err != nil || r.Outcome != OutcomeNone {
		t.Fatalf("memory-only restore = %+v, %v", r, err)
	}
	if st, err := m.Checkpoint(); err != nil || st.Bytes != 0 {
		t.Fatalf("memory-only checkpoint = %+v, %v", st, err)
	}
}

// TestLockDir: a second agent on the same state directory waits until the
// first one has written its final checkpoint and let go.
func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	a := testStore(t, dir, c)
	restore(t, a)
	a.Update(1, Obs{Value: 10, TS: sec(0)})

	b := testStore(t, dir, c)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := b.Restore(ctx); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("second agent did not wait for the first: %v", err)
	}
	done := make(chan Restored)
	go func() { r, _ := b.Restore(context.Background()); done <- r }()
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("second agent restored %+v while the first held the directory", r)
	default:
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Outcome != OutcomeOK || r.Series != 1 {
		t.Fatalf("restore after the first agent closed = %+v", r)
	}
	b.Close()
}

// TestCheckpointDuringUpdates writes checkpoints while loops update (the race
// detector watches) and checks every checkpointed series is one some loop wrote.
func TestCheckpointDuringUpdates(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := testStore(t, dir, c)
	restore(t, s)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			for i := int64(1); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := uint64(w)<<32 | uint64(i%5000)
				s.Update(key, Obs{Value: float64(i), TS: sec(-600 + i/5000)})
			}
		})
	}
	for s.Len() < 4000 {
		time.Sleep(time.Millisecond)
	}
	for range 5 {
		if _, err := s.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	s.unlock()
	r := testStore(t, dir, c)
	res := restore(t, r)
	if res.Outcome != OutcomeUnclean || res.Series == 0 {
		t.Fatalf("restore = %+v", res)
	}
	for k, st := range contents(r) {
		if k>>32 >= 4 || st.last < 1 || uint64(st.last)%5000 != k&0xffffffff {
			t.Fatalf("restored series %x = %+v was never written", k, st)
		}
	}
}

// TestRun checks the periodic work: checkpoints, eviction, and that a
// checkpoint failure is logged and does not stop the loop.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := testStore(t, dir, c, func(cfg *Config) { cfg.CheckpointInterval = 10 * time.Millisecond; cfg.StaleAfter = time.Minute })
	restore(t, s)
	s.Update(1, Obs{Value: 1, TS: sec(-120)}) // stale
	s.Update(2, Obs{Value: 1, TS: sec(0)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, err := os.ReadFile(filepath.Join(dir, "delta.ckpt"))
		if err == nil && len(f) == headerSize+recordSize && s.Len() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of the one live series after 5s (len %d, store %d, err %v)", len(f), s.Len(), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRestartSemantics spells out doc.go's decisions on one series.
func TestRestartSemantics(t *testing.T) {
	c := newClock()
	update := func(s *Store, v float64, at int64) float64 {
		t.Helper()
		d, _ := s.Update(9, Obs{Value: v, TS: sec(at)})
		return d
	}
	kill := func(s *Store) { s.unlock() } // the kernel drops a dead process's lock

	// first runs an agent that sees 10, then 15.
	first := func(t *testing.T) (string, *Store) {
		dir := t.TempDir()
		a := testStore(t, dir, c)
		restore(t, a)
		update(a, 10, 1)
		if d := update(a, 15, 2); d != 5 {
			t.Fatalf("delta %v", d)
		}
		return dir, a
	}

	t.Run("clean stop: the first delta is the increase while down", func(t *testing.T) {
		dir, a := first(t)
		a.Close()
		b := testStore(t, dir, c)
		restore(t, b)
		if d := update(b, 22, 60); d != 7 {
			t.Fatalf("first delta after the restart %v, want 7", d)
		}
	})
	t.Run("kill: what was sent after the checkpoint is counted again, nothing lost", func(t *testing.T) {
		dir, a := first(t)
		if _, err := a.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		if d := update(a, 20, 3); d != 5 { // sent, then the agent dies
			t.Fatalf("delta %v", d)
		}
		kill(a)
		b := testStore(t, dir, c)
		if r := restore(t, b); r.Outcome != OutcomeUnclean {
			t.Fatalf("restore %+v", r)
		}
		// True increase since the last delta: 2. Emitted: 7, the 5 sent after
		// the checkpoint again.
		if d := update(b, 22, 60); d != 7 {
			t.Fatalf("first delta after the kill %v, want 7", d)
		}
	})
	t.Run("too old: a baseline, no delta spanning the outage", func(t *testing.T) {
		dir, a := first(t)
		a.Close()
		late := &clock{t: time.UnixMilli(sec(3601))}
		b := testStore(t, dir, late)
		if r := restore(t, b); r.Outcome != OutcomeTooOld {
			t.Fatalf("restore %+v", r)
		}
		if d, ok := b.Update(9, Obs{Value: 5000, TS: sec(3603)}); ok {
			t.Fatalf("first observation after a too old checkpoint emitted %v", d)
		}
		if d := update(b, 5004, 3604); d != 4 {
			t.Fatalf("delta %v", d)
		}
	})
}
