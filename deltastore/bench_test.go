package deltastore

import (
	"context"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// benchKey spreads i over the key space as series hashes would.
func benchKey(i uint64) uint64 { return i * 0x9E3779B97F4A7C15 }

// BenchmarkUpdate is the steady state: known series, a new observation each.
func BenchmarkUpdate(b *testing.B) {
	const n = 1 << 16
	s := New(Config{})
	for k := range uint64(n) {
		s.Update(benchKey(k), Obs{Value: 1, TS: sec(0)})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// Every round over the n series is one second later.
		s.Update(benchKey(uint64(i%n)), Obs{Value: float64(i), TS: sec(int64(1 + i/n))})
		i++
	}
}

// BenchmarkUpdateParallel is Update from as many goroutines as CPUs, as
// concurrent scrape loops call it.
func BenchmarkUpdateParallel(b *testing.B) {
	const n = 1 << 16
	s := New(Config{})
	for w := range uint64(runtime.GOMAXPROCS(0)) {
		for k := range uint64(n) {
			s.Update(benchKey(k)^(w+1)<<40, Obs{Value: 1, TS: sec(0)})
		}
	}
	var worker atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// RunParallel runs again for every b.N tried: keep to the prefilled keys.
		base := (worker.Add(1)%uint64(runtime.GOMAXPROCS(0)) + 1) << 40
		i := 0
		for pb.Next() {
			s.Update(benchKey(uint64(i%n))^base, Obs{Value: float64(i), TS: sec(int64(1 + i/n))})
			i++
		}
	})
}

const million = 1_000_000

func fill(s *Store, n int) {
	for k := range uint64(n) {
		s.Update(benchKey(k), Obs{Value: float64(k), TS: sec(0), Created: sec(-3600)})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkMemory fills a store with one million series and reports the heap
// it holds per series (after GC), and the time to insert one.
func BenchmarkMemory(b *testing.B) {
	var perSeries float64
	for b.Loop() {
		b.StopTimer()
		before := heapInUse()
		b.StartTimer()
		s := New(Config{})
		fill(s, million)
		b.StopTimer()
		perSeries = float64(heapInUse()-before) / million
		runtime.KeepAlive(s)
		b.StartTimer()
	}
	b.ReportMetric(perSeries, "B/series")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/million, "ns/insert")
}

// BenchmarkCheckpoint writes the checkpoint of one million series to disk
// (fsync included).
func BenchmarkCheckpoint(b *testing.B) {
	s := New(Config{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler), Now: fixedNow})
	fill(s, million)
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

// BenchmarkRestore restores the checkpoint of one million series into an
// empty store: verification, loading, marking the file in use; and reports
// the heap the restored store holds per series (its maps sized at once).
func BenchmarkRestore(b *testing.B) {
	dir := b.TempDir()
	cfg := Config{Dir: dir, Logger: slog.New(slog.DiscardHandler), Now: fixedNow}
	s := New(cfg)
	fill(s, million)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	var bytes int64
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
		b.StopTimer()
		perSeries = float64(heapInUse()-before) / million
		// A final checkpoint again, so that every iteration restores one.
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		bytes = headerSize + million*recordSize
		b.StartTimer()
	}
	b.SetBytes(bytes)
	b.ReportMetric(perSeries, "B/series")
}

func fixedNow() time.Time { return time.UnixMilli(sec(0)) }
