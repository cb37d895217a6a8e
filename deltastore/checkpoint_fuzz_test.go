package deltastore

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

// FuzzRestore reads arbitrary bytes as the checkpoint a previous agent left
// (untrusted: a damaged disk, another program, a crafted file). Each input is
// read twice: as it is, which mostly tests verify, and with its checksum made
// valid, which takes load through its records. Restore must not panic or
// fail (a file it cannot use is corrupt or too old, and the agent starts
// empty), must allocate in proportion to the file rather than to the counts
// it claims, must restore only series the writer could have written, and
// what it restores must, written by Close, read back the same. The seeds
// (run by plain go test) include checkpoints written by the store itself.
func FuzzRestore(f *testing.F) {
	f.Add(specFile(true, sec(-10), specTargets))
	f.Add(specFile(false, sec(-10), specTargets))
	f.Add(specFile(true, sec(-10), nil))
	f.Add(specFileV1(true, sec(-10), specTargets[0].series))
	f.Add([]byte{})
	f.Add([]byte(magic))
	f.Add(storeWritten(f))
	// Counts whose sum wraps around uint64: two target records claimed, one
	// present, and 2^64-1 series records that are not there.
	f.Add(resum(specHeaderRaw(math.MaxUint64, 2, specTargetRecord(1, sec(-1), math.MaxUint64))))
	// Records the writer never writes: values Update refuses, a clamped time.
	f.Add(specFile(true, sec(-10), []specTarget{{seed: 1, series: []specRecord{{hash: 1, value: math.NaN(), ts: secs(-1)}}}}))
	f.Add(specFile(true, sec(-10), []specTarget{{seed: 1, series: []specRecord{{hash: 1, value: -1, ts: secs(-1)}}}}))
	f.Add(specFile(true, sec(-10), []specTarget{{seed: 1, series: []specRecord{{hash: 1, value: math.Inf(1), ts: secs(-1)}}}}))
	f.Add(specFile(true, sec(-10), []specTarget{{seed: 1, series: []specRecord{{hash: 1, value: 1, ts: math.MaxUint32}}}}))

	f.Fuzz(func(t *testing.T, b []byte) {
		checkRestore(t, b)
		if len(b) >= headerSize {
			checkRestore(t, resum(slices.Clone(b)))
		}
	})
}

// checkRestore restores b and checks what FuzzRestore promises.
func checkRestore(t *testing.T, b []byte) {
	dir := memDir(t)
	path := filepath.Join(dir, fileName)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s := fuzzStore(dir)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, err := s.Restore(context.Background())
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("Restore: %v (a checkpoint that cannot be used is corrupt, not an error)", err)
	}
	defer s.Close()
	// The reader buffers 64 KiB; what it keeps is at most the file's
	// records. A claimed count must never size an allocation.
	if n, limit := after.TotalAlloc-before.TotalAlloc, uint64(1<<20+64*len(b)); n > limit {
		t.Errorf("Restore of %d bytes allocated %d bytes, more than %d", len(b), n, limit)
	}
	switch r.Outcome {
	case OutcomeCorrupt:
		if r.Reason == nil || s.Len() != 0 {
			t.Fatalf("corrupt checkpoint: reason %v, %d series kept", r.Reason, s.Len())
		}
		if _, err := os.Stat(path + ".corrupt"); err != nil {
			t.Fatalf("corrupt checkpoint not kept aside: %v", err)
		}
		return
	case OutcomeTooOld:
		if s.Len() != 0 {
			t.Fatalf("too old checkpoint: %d series kept", s.Len())
		}
		return
	case OutcomeOK, OutcomeUnclean:
	default:
		t.Fatalf("outcome %q for an existing checkpoint", r.Outcome)
	}
	if records := (len(b) - headerSize) / recordSize; r.Series < 0 || r.Series+r.Skipped > records || s.Len() != r.Series {
		t.Fatalf("restored %d and skipped %d series (store holds %d) from a file of %d records", r.Series, r.Skipped, s.Len(), records)
	}
	cutoff := s.staleCutoff()
	got := contents(s)
	for seed, st := range got {
		for _, rc := range st.series {
			if !(rc.last >= 0 && rc.last <= math.MaxFloat64) || rc.ts < cutoff || rc.ts == math.MaxUint32 {
				t.Fatalf("target %x: restored %+v, which Update never stores (stale cutoff %d)", seed, rc, cutoff)
			}
		}
	}

	// What was restored, written again, reads back the same.
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2 := fuzzStore(dir)
	r2, err := s2.Restore(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if r2.Outcome != OutcomeOK || r2.Series != r.Series || r2.Skipped != 0 {
		t.Fatalf("checkpoint written after restoring %+v reads back as %+v", r, r2)
	}
	if again := contents(s2); !sameBits(again, got) {
		t.Fatalf("checkpoint written after a restore reads back %d targets, restored %d, or their series differ", len(again), len(got))
	}
}

func fuzzStore(dir string) *Store {
	return New(Config{Dir: dir, Now: fixedNow, Logger: slog.New(slog.DiscardHandler)})
}

// sameBits is contentsEqual with values compared bit for bit.
func sameBits(a, b map[uint64]tstate) bool {
	if len(a) != len(b) {
		return false
	}
	for seed, x := range a {
		y, ok := b[seed]
		if !ok || x.lastSuccess != y.lastSuccess || len(x.series) != len(y.series) {
			return false
		}
		for h, rx := range x.series {
			ry, ok := y.series[h]
			if !ok || rx.hash != ry.hash || math.Float64bits(rx.last) != math.Float64bits(ry.last) || rx.ts != ry.ts || rx.created != ry.created {
				return false
			}
		}
	}
	return true
}

// storeWritten returns a checkpoint the store wrote: targets with counter
// state, a gauge, a target with a last success only.
func storeWritten(tb testing.TB) []byte {
	dir := tb.TempDir()
	s := fuzzStore(dir)
	if _, err := s.Restore(context.Background()); err != nil {
		tb.Fatal(err)
	}
	for seed := range uint64(3) {
		tab := s.Table(seed)
		for k := range seed * 4 {
			observe(tab, k, Obs{Value: float64(k) * 1.5, TS: sec(-1 - int64(k)), Created: sec(-100)})
		}
		tab.Lock()
		mustAdd(tb, tab, 1000) // a gauge: no counter state
		tab.SetLastSuccess(sec(-1))
		tab.Unlock()
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, fileName))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// specHeaderRaw is a version-2 header with the given counts over body,
// its checksum that of an empty body (resum corrects it), followed by body.
func specHeaderRaw(series uint64, targets uint32, body []byte) []byte {
	h := specHeader(2, true, sec(-10), series, targets, nil)
	return append(bytes.Clone(h), body...)
}

// specTargetRecord is one target record as checkpoint.go documents it.
func specTargetRecord(seed uint64, lastSuccess int64, series uint64) []byte {
	b := binary.LittleEndian.AppendUint64(nil, seed)
	b = binary.LittleEndian.AppendUint64(b, uint64(lastSuccess))
	return binary.LittleEndian.AppendUint64(b, series)
}
