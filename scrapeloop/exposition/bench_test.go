package exposition

import (
	"os"
	"testing"
)

// BenchmarkCorpus parses every real text corpus file per op, touching what
// the scrape loop touches on a cache miss. Side-by-side comparisons with
// other parsers live in the benchmarks module.
func BenchmarkCorpus(b *testing.B) {
	var inputs [][]byte
	size, samples := 0, 0
	var p Parser
	for _, f := range corpusFiles(b) {
		if formatOfFile(f) != FormatPrometheus {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		p.Reset(data, FormatPrometheus)
		n := 0
		for p.Next() {
			n++
		}
		if p.Err() != nil {
			continue // the two broken corpus files
		}
		inputs = append(inputs, data)
		size += len(data)
		samples += n
	}
	var ls []Label
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		for _, data := range inputs {
			p.Reset(data, FormatPrometheus)
			for p.Next() {
				ls = p.Labels(ls[:0])
				_ = p.Name()
				_, _ = p.Timestamp()
				_ = p.Value()
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*samples), "ns/sample")
}
