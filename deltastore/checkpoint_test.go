package deltastore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"maps"
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

func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

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

// kill lets go of the state directory as the kernel does for a dead agent:
// no final checkpoint.
func kill(s *Store) {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	s.unlock()
	s.unlock = nil
}

// tstate is one target's state as a checkpoint holds it, comparable.
type tstate struct {
	lastSuccess int64
	series      map[uint64]record
}

// contents returns what a checkpoint of the store would hold: per target
// seed, the tables' last successes and counter state, and the restored
// state no table claimed yet.
func contents(s *Store) map[uint64]tstate {
	out := map[uint64]tstate{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for seed, r := range s.pending {
		st := tstate{lastSuccess: r.lastSuccess, series: map[uint64]record{}}
		for _, rc := range r.recs {
			st.series[rc.hash] = rc
		}
		out[seed] = st
	}
	for seed, t := range s.tables {
		t.mu.Lock()
		st := tstate{lastSuccess: t.lastSuccess, series: map[uint64]record{}}
		for _, sl := range t.slots {
			if sl.used && sl.ts != 0 {
				st.series[sl.Hash] = record{hash: sl.Hash, last: sl.last, ts: sl.ts, created: sl.created}
			}
		}
		t.mu.Unlock()
		if len(st.series) > 0 || st.lastSuccess != 0 {
			out[seed] = st
		}
	}
	return out
}

func contentsEqual(a, b map[uint64]tstate) bool {
	return maps.EqualFunc(a, b, func(x, y tstate) bool {
		return x.lastSuccess == y.lastSuccess && maps.Equal(x.series, y.series)
	})
}

// specTarget and specRecord are the checkpoint's records as checkpoint.go
// documents them.
type specTarget struct {
	seed        uint64
	lastSuccess int64
	series      []specRecord
}

type specRecord struct {
	hash    uint64
	value   float64
	ts      uint32
	created uint32
}

func (r specRecord) record() record {
	return record{hash: r.hash, last: r.value, ts: r.ts, created: r.created}
}

func stateOf(targets []specTarget) map[uint64]tstate {
	out := map[uint64]tstate{}
	for _, tg := range targets {
		st := tstate{lastSuccess: tg.lastSuccess, series: map[uint64]record{}}
		for _, r := range tg.series {
			st.series[r.hash] = r.record()
		}
		out[tg.seed] = st
	}
	return out
}

func appendSpecRecord(b []byte, r specRecord) []byte {
	b = binary.LittleEndian.AppendUint64(b, r.hash)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.value))
	b = binary.LittleEndian.AppendUint32(b, r.ts)
	return binary.LittleEndian.AppendUint32(b, r.created)
}

// specHeader encodes the 40-byte header as checkpoint.go documents it.
func specHeader(version uint16, final bool, writtenAt int64, series uint64, targets uint32, body []byte) []byte {
	h := []byte("NSDELTA\n")
	h = binary.LittleEndian.AppendUint16(h, version)
	flags := uint16(0)
	if final {
		flags = 1
	}
	h = binary.LittleEndian.AppendUint16(h, flags)
	h = binary.LittleEndian.AppendUint32(h, 24)
	h = binary.LittleEndian.AppendUint64(h, uint64(writtenAt))
	h = binary.LittleEndian.AppendUint64(h, series)
	tab := crc32.MakeTable(crc32.Castagnoli)
	h = binary.LittleEndian.AppendUint32(h, crc32.Update(crc32.Checksum(body, tab), tab, h))
	return binary.LittleEndian.AppendUint32(h, targets)
}

// specFile encodes a version-2 checkpoint exactly as the format comment in
// checkpoint.go describes it, independently of the writer, so that the
// reader is held to the documented format and not merely to its own writer:
// per target a target record (seed, last success, series count), then its
// series records.
func specFile(final bool, writtenAt int64, targets []specTarget) []byte {
	var body []byte
	n := 0
	for _, tg := range targets {
		body = binary.LittleEndian.AppendUint64(body, tg.seed)
		body = binary.LittleEndian.AppendUint64(body, uint64(tg.lastSuccess))
		body = binary.LittleEndian.AppendUint64(body, uint64(len(tg.series)))
		for _, r := range tg.series {
			body = appendSpecRecord(body, r)
		}
		n += len(tg.series)
	}
	return append(specHeader(2, final, writtenAt, uint64(n), uint32(len(targets)), body), body...)
}

// specFileV1 encodes the previous format, version 1: one flat list of
// records keyed by a hash of target and series, header bytes 36..39 zero.
func specFileV1(final bool, writtenAt int64, recs []specRecord) []byte {
	var body []byte
	for _, r := range recs {
		body = appendSpecRecord(body, r)
	}
	return append(specHeader(1, final, writtenAt, uint64(len(recs)), 0, body), body...)
}

// resum recomputes the checksum of a version-2 file edited in place.
func resum(b []byte) []byte {
	tab := crc32.MakeTable(crc32.Castagnoli)
	binary.LittleEndian.PutUint32(b[32:], crc32.Update(crc32.Checksum(b[headerSize:], tab), tab, b[:32]))
	return b
}

func secs(n int64) uint32 { return uint32(sec(n) / 1000) }

var specTargets = []specTarget{
	{seed: 1, lastSuccess: sec(-1) + 250, series: []specRecord{
		{hash: 1, value: 0, ts: secs(-5)},
		{hash: 0xffff_ffff_ffff_ffff, value: 1e300, ts: secs(-1), created: secs(-7200)},
	}},
	// The same series hash in another target is another series.
	{seed: 0xffff_ffff_ffff_fffe, series: []specRecord{
		{hash: 1, value: 12345.5, ts: secs(0), created: 1},
	}},
	// A target that succeeded and holds no counter state.
	{seed: 0, lastSuccess: sec(-2)},
	// Last scraped 3000 s ago.
	{seed: 0x8000_0000_0000_0001, lastSuccess: sec(-3000) + 999, series: []specRecord{
		{hash: 64, value: 0.125, ts: secs(-3000)},
	}},
}

func TestRestoreDocumentedFormat(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	if err := os.WriteFile(filepath.Join(dir, "delta.ckpt"), specFile(true, sec(-2), specTargets), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testStore(t, dir, c)
	r := restore(t, s)
	if r.Outcome != OutcomeOK || r.Series != 4 || r.Skipped != 0 || r.Age != 2*time.Second || s.Len() != 4 {
		t.Fatalf("restore = %+v, store holds %d; want ok with 4 series, age 2s", r, s.Len())
	}
	if g := s.m.restoredSeries.Get(); g != 4 {
		t.Errorf("restored series gauge %v", g)
	}
	if got := contents(s); !contentsEqual(got, stateOf(specTargets)) {
		t.Fatalf("restored\n%+v\nwant\n%+v", got, stateOf(specTargets))
	}
	// Each target's table takes over its state.
	for _, tg := range specTargets {
		tab := s.Table(tg.seed)
		tab.Lock()
		if tab.LastSuccess() != tg.lastSuccess {
			t.Errorf("target %x: last success %d, want %d", tg.seed, tab.LastSuccess(), tg.lastSuccess)
		}
		if len(tab.Slots()) != len(tg.series) {
			t.Errorf("target %x: %d slots, want %d", tg.seed, len(tab.Slots()), len(tg.series))
		}
		for _, rec := range tg.series {
			i := tab.Find(rec.hash)
			if i < 0 {
				t.Fatalf("target %x: series %x not found", tg.seed, rec.hash)
			}
			sl := tab.Slots()[i]
			if want := (Slot{Hash: rec.hash, last: rec.value, ts: rec.ts, created: rec.created, used: true}); sl != want {
				t.Errorf("target %x series %x: slot %+v, want %+v", tg.seed, rec.hash, sl, want)
			}
		}
		tab.Unlock()
	}
	if len(s.pending) != 0 || s.Len() != 4 {
		t.Fatalf("after every target claimed its state: %d pending, store Len %d", len(s.pending), s.Len())
	}
	// The restored value is the baseline of the next delta.
	if d, ok := observe(s.Table(0xffff_ffff_ffff_fffe), 1, Obs{Value: 12350, TS: sec(1), Created: 1000}); !ok || d != 4.5 {
		t.Fatalf("first delta after the restore %v, %v; want 4.5", d, ok)
	}
}

// parseFile reads a version-2 checkpoint by its documented layout.
func parseFile(t *testing.T, b []byte) (flags uint16, writtenAt int64, targets []specTarget) {
	t.Helper()
	if len(b) < headerSize || string(b[:8]) != "NSDELTA\n" || binary.LittleEndian.Uint16(b[8:]) != 2 || binary.LittleEndian.Uint32(b[12:]) != 24 {
		t.Fatalf("not a version-2 checkpoint: %x", b[:min(len(b), headerSize)])
	}
	flags = binary.LittleEndian.Uint16(b[10:])
	writtenAt = int64(binary.LittleEndian.Uint64(b[16:]))
	series := binary.LittleEndian.Uint64(b[24:])
	nt := binary.LittleEndian.Uint32(b[36:])
	body := b[headerSize:]
	if uint64(len(body)) != (series+uint64(nt))*24 {
		t.Fatalf("%d body bytes for %d series and %d targets", len(body), series, nt)
	}
	total := uint64(0)
	for range nt {
		tg := specTarget{seed: binary.LittleEndian.Uint64(body), lastSuccess: int64(binary.LittleEndian.Uint64(body[8:]))}
		n := binary.LittleEndian.Uint64(body[16:])
		body = body[24:]
		for range n {
			tg.series = append(tg.series, specRecord{
				hash:    binary.LittleEndian.Uint64(body),
				value:   math.Float64frombits(binary.LittleEndian.Uint64(body[8:])),
				ts:      binary.LittleEndian.Uint32(body[16:]),
				created: binary.LittleEndian.Uint32(body[20:]),
			})
			body = body[24:]
		}
		total += n
		targets = append(targets, tg)
	}
	if total != series {
		t.Fatalf("target records hold %d series, the header %d", total, series)
	}
	return flags, writtenAt, targets
}

// TestCheckpointWritesDocumentedFormat compares the writer's file with the
// independent encoding of the same state: the tables' counter state and last
// successes and the restored state no table claimed; not what holds no delta
// state (a gauge's slot, a table that never succeeded), stale state, removed
// slots, or released tables.
func TestCheckpointWritesDocumentedFormat(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	unclaimed := specTarget{seed: 77, lastSuccess: sec(-30), series: []specRecord{{hash: 5, value: 2.5, ts: secs(-30)}}}
	if err := os.WriteFile(filepath.Join(dir, "delta.ckpt"), specFile(false, sec(-1), []specTarget{unclaimed}), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testStore(t, dir, c)
	if r := restore(t, s); r.Outcome != OutcomeUnclean || r.Series != 1 {
		t.Fatalf("restore = %+v", r)
	}
	set := func(tab *Table, r specRecord) {
		sl := addSlot(t, tab, r.hash)
		sl.last, sl.ts, sl.created = r.value, r.ts, r.created
		sl.Ref, sl.Kind, sl.Gen, sl.Len = 1, 2, 3, 4 // the loop's: not checkpointed
	}
	for _, tg := range specTargets[:3] {
		tab := s.Table(tg.seed)
		tab.Lock()
		tab.SetLastSuccess(tg.lastSuccess)
		for _, r := range tg.series {
			set(tab, r)
		}
		tab.Unlock()
	}
	a := s.Table(specTargets[0].seed)
	a.Lock()
	mustAdd(t, a, 1000)                                       // a gauge: no delta state
	set(a, specRecord{hash: 1001, value: 9, ts: secs(-3601)}) // stale
	a.Remove(mustAdd(t, a, 1002))                             // removed
	a.Unlock()
	never := s.Table(9) // series without delta state, never succeeded
	never.Lock()
	mustAdd(t, never, 1)
	never.Unlock()
	gone := s.Table(10)
	gone.Lock()
	set(gone, specRecord{hash: 1, value: 1, ts: secs(0)})
	gone.SetLastSuccess(sec(0))
	gone.Unlock()
	gone.Release()

	st, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if st.Series != 4 || st.Bytes != headerSize+8*recordSize {
		t.Fatalf("checkpoint stats %+v, want 4 series in 4 targets, %d bytes", st, headerSize+8*recordSize)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "delta.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	flags, writtenAt, inOrder := parseFile(t, got)
	if flags != 1 || writtenAt != sec(0) {
		t.Fatalf("flags %d, written at %d; want final, %d", flags, writtenAt, sec(0))
	}
	want := append(slices.Clone(specTargets[:3]), unclaimed)
	norm := func(tgs []specTarget) []specTarget {
		out := slices.Clone(tgs)
		for i := range out {
			out[i].series = slices.SortedFunc(slices.Values(out[i].series), func(a, b specRecord) int { return cmp.Compare(a.hash, b.hash) })
		}
		slices.SortFunc(out, func(a, b specTarget) int { return cmp.Compare(a.seed, b.seed) })
		return out
	}
	if g, w := norm(inOrder), norm(want); !slices.EqualFunc(g, w, func(a, b specTarget) bool {
		return a.seed == b.seed && a.lastSuccess == b.lastSuccess && slices.Equal(a.series, b.series)
	}) {
		t.Fatalf("targets:\n%+v\nwant\n%+v", g, w)
	}
	// Targets and series come in map and slot order: the whole file,
	// checksum included, is the spec's encoding of them in the writer's order.
	if spec := specFile(true, sec(0), inOrder); !bytes.Equal(got, spec) {
		t.Fatalf("file differs from the documented encoding:\n got %x\nwant %x", got[:headerSize], spec[:headerSize])
	}
}

func TestRestoreOutcomes(t *testing.T) {
	targets := []specTarget{
		{seed: 1, lastSuccess: sec(-10), series: []specRecord{{hash: 1, value: 1, ts: secs(-10)}, {hash: 2, value: 2, ts: secs(-10)}}},
		{seed: 2, lastSuccess: sec(-11), series: []specRecord{{hash: 1, value: 3, ts: secs(-11), created: secs(-100)}}},
	}
	good := specFile(true, sec(-10), targets) // 40 + 5*24 = 160 bytes
	edit := func(f func(b []byte)) []byte { b := slices.Clone(good); f(b); return b }
	flip := func(i int) []byte { return edit(func(b []byte) { b[i] ^= 0x04 }) }
	var v1recs []specRecord
	for _, tg := range targets {
		v1recs = append(v1recs, tg.series...)
	}
	cases := []struct {
		name    string
		file    []byte // nil: no checkpoint
		outcome string
		series  int
		reason  string
	}{
		{"no checkpoint", nil, OutcomeNone, 0, ""},
		{"final checkpoint", good, OutcomeOK, 3, ""},
		{"periodic checkpoint", specFile(false, sec(-10), targets), OutcomeUnclean, 3, ""},
		{"empty checkpoint", specFile(true, sec(-10), nil), OutcomeOK, 0, ""},
		{"targets without series", specFile(true, sec(-10), []specTarget{{seed: 1, lastSuccess: sec(-10)}}), OutcomeOK, 0, ""},
		{"too old", specFile(true, sec(-3601), targets), OutcomeTooOld, 0, ""},
		{"one hour is not too old", specFile(true, sec(-3600), targets[1:]), OutcomeOK, 1, ""},
		{"empty file", []byte{}, OutcomeCorrupt, 0, "0 bytes, shorter than the 40-byte header"},
		{"foreign file", []byte("# some other program's state, long enough to hold a header\n"), OutcomeCorrupt, 0, `not a nodescraper delta checkpoint (starts with "# some o")`},
		{"version 1", specFileV1(true, sec(-10), v1recs), OutcomeCorrupt, 0, "format version 1, this agent reads version 2"},
		{"newer version", edit(func(b []byte) { b[8] = 3 }), OutcomeCorrupt, 0, "format version 3, this agent reads version 2"},
		{"truncated body", good[:len(good)-5], OutcomeCorrupt, 0, "truncated: 155 bytes hold 4 of its 5 records"},
		{"truncated header", good[:20], OutcomeCorrupt, 0, "20 bytes, shorter than the 40-byte header"},
		{"padded", append(slices.Clone(good), 0), OutcomeCorrupt, 0, "1 stray bytes after its 5 records"},
		{"series count beyond the file", edit(func(b []byte) { b[31] = 0x10 }), OutcomeCorrupt, 0, "truncated: 160 bytes hold 5 of its"},
		{"target count beyond the file", flip(37), OutcomeCorrupt, 0, "truncated: 160 bytes hold 5 of its 1029 records"},
		{"target count short of the file", edit(func(b []byte) { b[36] = 1 }), OutcomeCorrupt, 0, "24 stray bytes after its 4 records"},
		{"flipped bit in a value", flip(headerSize + 24 + 10), OutcomeCorrupt, 0, "checksum"},
		{"flipped bit in a seed", flip(headerSize + 1), OutcomeCorrupt, 0, "checksum"},
		{"flipped bit in a target's last success", flip(headerSize + 9), OutcomeCorrupt, 0, "checksum"},
		{"flipped bit in a target's series count", flip(headerSize + 16), OutcomeCorrupt, 0, "checksum"},
		{"flipped bit in the flags", flip(10), OutcomeCorrupt, 0, "checksum"},
		{"flipped bit in the time", flip(17), OutcomeCorrupt, 0, "checksum"},
		{"record size", edit(func(b []byte) { b[12] = 32 }), OutcomeCorrupt, 0, "record size 32, want 24"},
		// Checksummed, sized right, but not what the writer writes.
		{"a target claiming more series than follow", edit(func(b []byte) {
			binary.LittleEndian.PutUint64(b[headerSize+16:], 3)
			resum(b)
		}), OutcomeCorrupt, 0, "claims"},
		{"series records of no target", edit(func(b []byte) {
			binary.LittleEndian.PutUint64(b[headerSize+3*24+16:], 0)
			resum(b)
		}), OutcomeCorrupt, 0, "1 series records belong to no target"},
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
			for o, g := range s.m.outcomes {
				if want := b2f(o == tc.outcome); g.Get() != want {
					t.Errorf("outcome gauge %s = %v, want %v", o, g.Get(), want)
				}
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
				if len(contents(s)) != 0 {
					t.Fatal("state restored from a corrupt checkpoint")
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRestoreSkipsStaleAndExcessSeries(t *testing.T) {
	dir := t.TempDir()
	// specTargets[3] was last scraped 3000 s ago; with a 30-minute
	// StaleAfter neither its series nor its last success come back: alone,
	// the last success would make each of its series pass for one that
	// appeared since that scrape, its whole value an increase.
	if err := os.WriteFile(filepath.Join(dir, "delta.ckpt"), specFile(true, sec(0), specTargets), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testStore(t, dir, newClock(), func(c *Config) { c.StaleAfter = 30 * time.Minute })
	if r := restore(t, s); r.Series != 3 || r.Skipped != 1 || s.Len() != 3 {
		t.Fatalf("restore = %+v, store %d; want 3 restored, 1 skipped", r, s.Len())
	}
	if got, want := contents(s), stateOf(specTargets[:3]); !contentsEqual(got, want) {
		t.Fatalf("restored\n%+v\nwant\n%+v", got, want)
	}
	stale := s.Table(specTargets[3].seed)
	stale.Lock()
	if stale.LastSuccess() != 0 || len(stale.Slots()) != 0 {
		t.Fatalf("stale target restored: last success %d, %d slots", stale.LastSuccess(), len(stale.Slots()))
	}
	stale.Unlock()
	s.Close()

	// Beyond MaxSeries, restored series are refused like new ones.
	if err := os.WriteFile(filepath.Join(dir, "delta.ckpt"), specFile(true, sec(0), specTargets[:2]), 0o600); err != nil {
		t.Fatal(err)
	}
	s = testStore(t, dir, newClock(), func(c *Config) { c.MaxSeries = 2 })
	if r := restore(t, s); r.Series != 2 || r.Skipped != 1 || !s.Full() || s.m.refused[RefusedNode].Get() != 1 {
		t.Fatalf("restore = %+v, full %v, refused %d; want 2 restored, 1 skipped", r, s.Full(), s.m.refused[RefusedNode].Get())
	}
	if _, ok := observe(s.Table(5), 1, Obs{Value: 1, TS: sec(1), Fresh: true}); ok {
		t.Fatal("a new series beyond the budget the restore filled")
	}
	s.Close()
}

// TestRestartRoundTrip checkpoints a store, restores it in a new one, and
// checks that the restored final checkpoint is marked as in use: a kill of
// the new agent before its first checkpoint must not pass for a clean stop.
func TestRestartRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	a := testStore(t, dir, c)
	restore(t, a)
	for seed := range uint64(10) {
		tab := a.Table(seed)
		for k := range uint64(100) {
			observe(tab, k, Obs{Value: float64(seed*100 + k), TS: sec(-1), Created: sec(-int64(k))})
		}
		tab.Lock()
		mustAdd(t, tab, 1000) // a gauge
		tab.SetLastSuccess(sec(-1) + int64(seed))
		tab.Unlock()
	}
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
	if r := restore(t, b); r.Outcome != OutcomeOK || r.Series != 1000 {
		t.Fatalf("restore = %+v", r)
	}
	if got := contents(b); !contentsEqual(got, want) {
		t.Fatalf("restored state differs: %d targets, want %d", len(got), len(want))
	}
	for seed := range uint64(5) { // half the targets are scraped again
		tab := b.Table(seed)
		tab.Lock()
		if tab.LastSuccess() != sec(-1)+int64(seed) || tab.Find(1000) != -1 {
			t.Fatalf("target %d: last success %d, gauge slot %d", seed, tab.LastSuccess(), tab.Find(1000))
		}
		tab.Unlock()
	}
	// b is killed: no Close. The next agent finds the same state, flagged.
	kill(b)
	c2 := testStore(t, dir, c)
	if r := restore(t, c2); r.Outcome != OutcomeUnclean || r.Series != 1000 || r.Age != time.Duration(0) {
		t.Fatalf("restore after a kill = %+v, want unclean, 1000 series, age kept at 0", r)
	}
	if got := contents(c2); !contentsEqual(got, want) {
		t.Fatal("state restored after the kill differs")
	}
	c2.Close()
}

// TestUnclaimedStateSurvivesCheckpoints: restored state of a target not
// scraped again yet is in every checkpoint until StaleAfter after the
// restore, then it is evicted.
func TestUnclaimedStateSurvivesCheckpoints(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	x := specTarget{seed: 1, lastSuccess: sec(-10), series: []specRecord{{hash: 1, value: 5, ts: secs(-10)}}}
	y := specTarget{seed: 2, lastSuccess: sec(-10), series: []specRecord{{hash: 1, value: 7, ts: secs(-10)}, {hash: 2, value: 8, ts: secs(-10), created: secs(-99)}}}
	if err := os.WriteFile(filepath.Join(dir, "delta.ckpt"), specFile(true, sec(-10), []specTarget{x, y}), 0o600); err != nil {
		t.Fatal(err)
	}
	stale := func(cfg *Config) { cfg.StaleAfter = 10 * time.Minute }
	a := testStore(t, dir, c, stale)
	restore(t, a)
	xa := a.Table(x.seed) // x is scraped again, y not
	observe(xa, 1, Obs{Value: 6, TS: sec(1)})
	for i := range int64(2) {
		c.set(time.UnixMilli(sec(2 + i)))
		if _, err := a.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	if n := a.evict(); n != 0 {
		t.Fatalf("evicted %d within StaleAfter", n)
	}
	kill(a)

	b := testStore(t, dir, c, stale)
	restored := c.now()
	if r := restore(t, b); r.Outcome != OutcomeUnclean || r.Series != 3 {
		t.Fatalf("restore = %+v", r)
	}
	if got, want := contents(b), stateOf([]specTarget{y}); !contentsEqual(map[uint64]tstate{y.seed: got[y.seed]}, want) {
		t.Fatalf("unclaimed target after two checkpoints and a restart: %+v, want %+v", got[y.seed], want[y.seed])
	}
	xb := b.Table(x.seed)
	c.set(restored.Add(10 * time.Minute))
	observe(xb, 1, Obs{Value: 9, TS: c.now().UnixMilli()})
	if n := b.evict(); n != 0 {
		t.Fatalf("evicted %d at StaleAfter", n)
	}
	c.set(restored.Add(10*time.Minute + time.Second))
	if n := b.evict(); n != 2 || b.m.evictions.Get() != 2 || b.Len() != 1 {
		t.Fatalf("evicted %d (counted %d) after StaleAfter, store %d; want y's 2, 1 left", n, b.m.evictions.Get(), b.Len())
	}
	yb := b.Table(y.seed) // claimed too late: empty
	yb.Lock()
	if yb.LastSuccess() != 0 || len(yb.Slots()) != 0 {
		t.Fatal("evicted state came back")
	}
	yb.Unlock()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	d := testStore(t, dir, c, stale)
	restore(t, d)
	if got := contents(d); len(got) != 1 || got[x.seed].series[1].last != 9 {
		t.Fatalf("after the eviction the checkpoint holds %+v, want x alone", got)
	}
	d.Close()
}

func TestRestoreRemovesTempFilesAndKeepsCheckpointOnFailure(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	a := testStore(t, dir, c)
	observe(a.Table(1), 1, Obs{Value: 10, TS: sec(0)})
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
	observe(broken.Table(1), 1, Obs{Value: 11, TS: sec(1)})
	if _, err := broken.Checkpoint(); err == nil || !strings.Contains(err.Error(), "delta checkpoint in "+dir+"/gone") {
		t.Fatalf("checkpoint into a missing directory: %v", err)
	}
	if broken.m.checkpointErrors.Get() != 1 || broken.m.checkpoints.Get() != 0 {
		t.Fatalf("checkpoint errors %d, checkpoints %d", broken.m.checkpointErrors.Get(), broken.m.checkpoints.Get())
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
		if b := filepath.Base(f); b != "delta.ckpt" && b != "delta.lock" && b != "gone" {
			t.Errorf("unexpected file %s in the state directory", b)
		}
	}
	b.Close()
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
	observe(s.Table(1), 1, Obs{Value: 1, TS: sec(0)})
	if _, err := s.Restore(context.Background()); err == nil {
		t.Fatal("Restore into a non-empty store succeeded")
	}
	// No state directory: memory only, nothing written.
	m := New(Config{Logger: slog.New(slog.DiscardHandler)})
	if r, err := m.Restore(context.Background()); err != nil || r.Outcome != OutcomeNone {
		t.Fatalf("memory-only restore = %+v, %v", r, err)
	}
	observe(m.Table(1), 1, Obs{Value: 1, TS: sec(0)})
	if st, err := m.Checkpoint(); err != nil || st.Bytes != 0 {
		t.Fatalf("memory-only checkpoint = %+v, %v", st, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLockDir: a second agent on the same state directory waits until the
// first one has written its final checkpoint and let go.
func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	a := testStore(t, dir, c)
	restore(t, a)
	observe(a.Table(1), 1, Obs{Value: 10, TS: sec(0)})

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

// TestCheckpointDuringUpdates writes checkpoints, two writers at a time,
// while loops scrape their tables (growing, sweeping and shrinking them),
// targets come and go and eviction runs; the race detector watches. Every
// checkpointed target must be one scrape's state, whole: its last success
// and the series that scrape saw, each with the value and time it wrote.
func TestCheckpointDuringUpdates(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := testStore(t, dir, c)
	restore(t, s)
	const loops = 4
	// scrape i sees series [base, base+n) of its target at sec(-600+i),
	// every value i; every 25th scrape most series are gone.
	window := func(i int64) (base, n int64) {
		base, n = i/10*37%5000, 2000
		if i%25 == 0 {
			n = 100
		}
		return base, n
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	for w := range uint64(loops) {
		wg.Go(func() {
			tab := s.Table(w)
			for i := int64(1); !stopped(); i++ {
				base, n := window(i)
				ts := sec(-600 + i)
				tab.Lock()
				gen := uint32(i)
				for k := base; k < base+n; k++ {
					h := w<<32 | uint64(k)
					j := tab.Find(h)
					if j < 0 {
						var ok bool
						if j, ok = tab.Add(h); !ok {
							panic("refused")
						}
					}
					sl := &tab.Slots()[j]
					sl.Gen = gen
					tab.Update(sl, Obs{Value: float64(i), TS: ts})
				}
				tab.Sweep(func(sl *Slot) bool { return sl.Gen != gen })
				tab.SetLastSuccess(ts)
				tab.Unlock()
			}
		})
	}
	wg.Go(func() { // targets that come and go, eviction, metrics
		var buf bytes.Buffer
		for j := uint64(0); !stopped(); j++ {
			seed := 100 + j%200
			tab := s.Table(seed)
			for k := range uint64(10) {
				observe(tab, seed<<32|k, Obs{Value: float64(seed - 100), TS: sec(-5)})
			}
			if j%2 == 0 {
				tab.Release()
			}
			s.evict()
			_ = s.Len()
			buf.Reset()
			s.Metrics().WritePrometheus(&buf)
			time.Sleep(100 * time.Microsecond)
		}
	})
	for s.Len() < 4000 {
		time.Sleep(time.Millisecond)
	}
	var ckpt sync.WaitGroup
	for range 2 {
		ckpt.Go(func() {
			for range 3 {
				if _, err := s.Checkpoint(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	ckpt.Wait()
	close(stop)
	wg.Wait()
	kill(s)
	r := testStore(t, dir, c)
	res := restore(t, r)
	if res.Outcome != OutcomeUnclean || res.Series == 0 {
		t.Fatalf("restore = %+v", res)
	}
	scraped := 0
	for seed, st := range contents(r) {
		if seed >= 100 { // a coming and going target
			if len(st.series) != 10 || st.lastSuccess != 0 {
				t.Fatalf("target %d restored as %+v", seed, st)
			}
			for h, rec := range st.series {
				if h>>32 != seed || rec.last != float64(seed-100) || rec.ts != secs(-5) {
					t.Fatalf("target %d: series %x = %+v was never written", seed, h, rec)
				}
			}
			continue
		}
		if seed >= loops {
			t.Fatalf("unknown target %d", seed)
		}
		scraped++
		i := (st.lastSuccess - sec(-600)) / 1000
		base, n := window(i)
		if st.lastSuccess != sec(-600+i) || int64(len(st.series)) != n {
			t.Fatalf("target %d: last success %d (scrape %d) with %d series, want %d", seed, st.lastSuccess, i, len(st.series), n)
		}
		for h, rec := range st.series {
			k := int64(h & 0xffffffff)
			if h>>32 != seed || k < base || k >= base+n || rec.last != float64(i) || rec.ts != secs(-600+i) {
				t.Fatalf("target %d: series %x = %+v is not of scrape %d", seed, h, rec, i)
			}
		}
	}
	if scraped != loops {
		t.Fatalf("%d of the %d scraped targets restored", scraped, loops)
	}
	r.Close()
}

// TestRun checks the periodic work: checkpoints and eviction.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := testStore(t, dir, c, func(cfg *Config) { cfg.CheckpointInterval = 10 * time.Millisecond; cfg.StaleAfter = time.Minute })
	restore(t, s)
	tab := s.Table(1)
	observe(tab, 1, Obs{Value: 1, TS: sec(-120)}) // stale
	observe(tab, 2, Obs{Value: 1, TS: sec(0)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, err := os.ReadFile(filepath.Join(dir, "delta.ckpt"))
		if err == nil && len(f) == headerSize+2*recordSize && s.m.evictions.Get() == 1 && s.m.checkpoints.Get() >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of the one live series after 5s (len %d, evictions %d, err %v)", len(f), s.m.evictions.Get(), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if sl, _ := slotOf(tab, 1); sl.HasState() {
		t.Fatal("stale state not evicted")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRestartSemantics spells out doc.go's decisions on one series.
func TestRestartSemantics(t *testing.T) {
	c := newClock()
	update := func(s *Store, v float64, at int64) float64 {
		t.Helper()
		d, _ := observe(s.Table(1), 9, Obs{Value: v, TS: sec(at)})
		return d
	}

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
		b.Close()
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
		b.Close()
	})
	t.Run("too old: a baseline, no delta spanning the outage", func(t *testing.T) {
		dir, a := first(t)
		a.Table(1).Lock()
		a.Table(1).SetLastSuccess(sec(2))
		a.Table(1).Unlock()
		a.Close()
		late := &clock{t: time.UnixMilli(sec(3601))}
		b := testStore(t, dir, late)
		if r := restore(t, b); r.Outcome != OutcomeTooOld {
			t.Fatalf("restore %+v", r)
		}
		tab := b.Table(1)
		tab.Lock()
		if tab.LastSuccess() != 0 {
			t.Fatal("the target's last success came back from a too old checkpoint")
		}
		tab.Unlock()
		if d, ok := observe(tab, 9, Obs{Value: 5000, TS: sec(3603)}); ok {
			t.Fatalf("first observation after a too old checkpoint emitted %v", d)
		}
		if d := update(b, 5004, 3604); d != 4 {
			t.Fatalf("delta %v", d)
		}
		b.Close()
	})
}
