package deltastore

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// benchKey spreads i over the key space as series hashes would.
func benchKey(i uint64) uint64 { return i*0x9E3779B97F4A7C15 + 1 }

// fillTable adds n series with counter state to tab.
func fillTable(tab *Table, n int) {
	tab.Lock()
	defer tab.Unlock()
	for k := range uint64(n) {
		i, ok := tab.Add(benchKey(k))
		if !ok {
			panic("series refused")
		}
		tab.Update(&tab.Slots()[i], Obs{Value: float64(k), TS: sec(0), Created: sec(-3600)})
	}
}

// BenchmarkUpdate is the steady state of a scrape: a known series found by
// its hash, and a new observation of it.
func BenchmarkUpdate(b *testing.B) {
	const n = 1 << 16
	s := New(Config{})
	tab := s.Table(1)
	fillTable(tab, n)
	tab.Lock()
	defer tab.Unlock()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// Every round over the n series is one second later.
		j := tab.Find(benchKey(uint64(i % n)))
		tab.Update(&tab.Slots()[j], Obs{Value: float64(i), TS: sec(int64(1 + i/n))})
		i++
	}
}

// BenchmarkUpdateParallel is as many loops as CPUs, each on its own table,
// as concurrent scrape loops are.
func BenchmarkUpdateParallel(b *testing.B) {
	const n = 1 << 16
	s := New(Config{})
	procs := runtime.GOMAXPROCS(0)
	for w := range procs {
		fillTable(s.Table(uint64(w)), n)
	}
	var worker atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// RunParallel runs again for every b.N tried: keep to the prefilled tables.
		tab := s.Table(worker.Add(1) % uint64(procs))
		i := 0
		for pb.Next() {
			// A scrape holds its table's lock for the whole exposition.
			if i%n == 0 {
				if i > 0 {
					tab.Unlock()
				}
				tab.Lock()
			}
			j := tab.Find(benchKey(uint64(i % n)))
			tab.Update(&tab.Slots()[j], Obs{Value: float64(i), TS: sec(int64(1 + i/n))})
			i++
		}
		if i > 0 {
			tab.Unlock()
		}
	})
}

const million = 1_000_000

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkMemory fills a table with one million series and reports the heap
// it holds per series (after GC): the slot and its index entry. ns/insert is
// the time to add one.
func BenchmarkMemory(b *testing.B) {
	var perSeries float64
	for b.Loop() {
		b.StopTimer()
		before := heapInUse()
		b.StartTimer()
		s := New(Config{})
		fillTable(s.Table(1), million)
		b.StopTimer()
		perSeries = float64(heapInUse()-before) / million
		runtime.KeepAlive(s)
		b.StartTimer()
	}
	b.ReportMetric(perSeries, "B/series")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/million, "ns/insert")
}

// fillTargets spreads a million series over 1000 targets of 1000.
func fillTargets(s *Store) {
	for seed := range uint64(1000) {
		tab := s.Table(seed)
		fillTable(tab, million/1000)
		tab.Lock()
		tab.SetLastSuccess(sec(0))
		tab.Unlock()
	}
}

// BenchmarkCheckpoint writes the checkpoint of one million series in 1000
// targets to disk (fsync included).
func BenchmarkCheckpoint(b *testing.B) {
	s := New(Config{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler), Now: fixedNow})
	fillTargets(s)
	var st CheckpointStats
	for b.Loop() {
		var err error
		if st, err = s.Checkpoint(); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(st.Bytes)
	b.ReportMetric(float64(st.Series), "series")
}

// BenchmarkRestore restores the checkpoint of one million series in 1000
// targets into an empty store, and their tables take it over: verification,
// loading, marking the file in use, building the tables. It reports the heap
// the restored store holds per series.
func BenchmarkRestore(b *testing.B) {
	dir := b.TempDir()
	cfg := Config{Dir: dir, Logger: slog.New(slog.DiscardHandler), Now: fixedNow}
	s := New(cfg)
	fillTargets(s)
	st, err := s.Checkpoint()
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	var perSeries float64
	for b.Loop() {
		b.StopTimer()
		before := heapInUse()
		s = New(cfg)
		b.StartTimer()
		r, err := s.Restore(context.Background())
		if err != nil || r.Series != million {
			b.Fatalf("restore = %+v, %v", r, err)
		}
		for seed := range uint64(1000) {
			s.Table(seed)
		}
		b.StopTimer()
		perSeries = float64(heapInUse()-before) / million
		// A final checkpoint again, so that every iteration restores one.
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.SetBytes(st.Bytes)
	b.ReportMetric(perSeries, "B/series")
}

func fixedNow() time.Time { return time.UnixMilli(sec(0)) }

// BenchmarkFind looks up series, as a scrape loop does when an
// exposition's order changed: hits, and misses (new series), in a table of
// 10,000 series (a target's, which the caches hold) and of a million.
func BenchmarkFind(b *testing.B) {
	for _, n := range []uint64{10_000, million} {
		s := New(Config{})
		tab := s.Table(1)
		fillTable(tab, int(n))
		tab.Lock()
		b.Run(fmt.Sprintf("n=%d/hit", n), func(b *testing.B) {
			b.ReportAllocs()
			i, found := uint64(0), 0
			for b.Loop() {
				if tab.Find(benchKey(i%n)) >= 0 {
					found++
				}
				i++
			}
			if found != int(i) {
				b.Fatalf("found %d of %d", found, i)
			}
		})
		b.Run(fmt.Sprintf("n=%d/miss", n), func(b *testing.B) {
			b.ReportAllocs()
			i := uint64(0)
			for b.Loop() {
				if tab.Find(benchKey(n+i%n)) >= 0 {
					b.Fatal("found a series never added")
				}
				i++
			}
		})
		tab.Unlock()
		tab.Release()
	}
}

// BenchmarkAdmit fills tables from empty, growth included, up to 10,000
// series (a target's) or a million: one op is one new series.
func BenchmarkAdmit(b *testing.B) {
	for _, n := range []uint64{10_000, million} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s := New(Config{})
			tab := s.Table(1)
			b.ReportAllocs()
			i := uint64(0)
			for b.Loop() {
				if i%n == 0 && i > 0 {
					tab.Release()
					tab = s.Table(i)
				}
				if _, why := tab.Admit(benchKey(i % n)); why != Admitted {
					b.Fatal(why)
				}
				i++
			}
		})
	}
}

// BenchmarkChurn removes a series of a 10,000-series table and admits
// another in its place: a target whose series come and go.
func BenchmarkChurn(b *testing.B) {
	const n = 10_000
	s := New(Config{})
	tab := s.Table(1)
	fillTable(tab, n)
	tab.Lock()
	defer tab.Unlock()
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		tab.Remove(tab.Find(benchKey(i)))
		if _, why := tab.Admit(benchKey(i + n)); why != Admitted {
			b.Fatal(why)
		}
		i++
	}
}
