package benchmarks

import (
	"runtime"
	"testing"
)

// TestComparableWork: every parser reads every input to the end and, except
// the newline scan and expfmt (which folds histograms and summaries), sees
// exactly the samples the exposition parser sees.
func TestComparableWork(t *testing.T) {
	for _, in := range append(loadReal(t), loadSynthetic(t)) {
		for _, pr := range parsers() {
			n, _, err := pr.new().parse(in.data)
			if err != nil {
				if pr.name == "expfmt" && rejectedByExpfmt[in.name] != "" {
					continue
				}
				t.Errorf("%s/%s: %v", in.name, pr.name, err)
				continue
			}
			if pr.name != "newline-scan" && pr.name != "expfmt" && n != in.samples {
				t.Errorf("%s/%s: %d samples, want %d", in.name, pr.name, n, in.samples)
			}
		}
	}
}

// BenchmarkParse runs every parser on each real corpus file, on all of them
// together (one op = one scrape of each file) and on the synthetic
// kube-state-metrics payload. Reported per op: MB/s, ns/sample,
// allocs/sample (and the usual B/op, allocs/op with -benchmem).
func BenchmarkParse(b *testing.B) {
	real := loadReal(b)
	b.Run("input=aggregate", func(b *testing.B) { benchInputs(b, real) })
	b.Run("input="+loadSynthetic(b).name, func(b *testing.B) { benchInputs(b, []input{loadSynthetic(b)}) })
	for _, in := range real {
		b.Run("input="+in.name, func(b *testing.B) { benchInputs(b, []input{in}) })
	}
}

// rejectedByExpfmt: payloads that prometheus/common's expfmt refuses while
// Prometheus' scraper takes them. expfmt's numbers leave them out.
var rejectedByExpfmt = map[string]string{
	"netdata-windows_exporter-0.20": `second HELP line for metric name "windows_mssql_locks_deadlocks"`,
}

func benchInputs(b *testing.B, all []input) {
	for _, pr := range parsers() {
		b.Run("parser="+pr.name, func(b *testing.B) {
			ins := all
			if pr.name == "expfmt" {
				ins = nil
				for _, in := range all {
					if rejectedByExpfmt[in.name] == "" {
						ins = append(ins, in)
					}
				}
				if len(ins) == 0 {
					b.Skip("expfmt rejects this payload: " + rejectedByExpfmt[all[0].name])
				}
			}
			size, samples := 0, 0
			for _, in := range ins {
				size += len(in.data)
				samples += in.samples
			}
			p := pr.new()
			for _, in := range ins { // warm up: steady state, as in a scrape loop
				if _, _, err := p.parse(in.data); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			// The loop stays on one OS thread so that its CPU time can be
			// read: on a shared machine wall time includes the time other
			// processes hold the CPU, thread CPU time does not.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			cpu0 := threadCPUTime()
			b.ResetTimer()
			var sink uint64
			for b.Loop() {
				for _, in := range ins {
					_, sum, _ := p.parse(in.data)
					sink += sum
				}
			}
			b.StopTimer()
			cpu := threadCPUTime() - cpu0
			runtime.ReadMemStats(&after)
			total := float64(b.N) * float64(samples)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/sample")
			b.ReportMetric(float64(cpu.Nanoseconds())/total, "cpu-ns/sample")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/sample")
			if sink == 0 {
				b.Fatal("no work observed")
			}
		})
	}
}
