package exposition

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

type conformanceCase struct {
	name        string
	metrics     []byte
	shouldParse bool
}

// conformanceCases loads the OpenMetrics parser conformance vectors.
func conformanceCases(t testing.TB) []conformanceCase {
	dirs, err := filepath.Glob("testdata/corpus/openmetrics-conformance/*")
	if err != nil {
		t.Fatal(err)
	}
	var cases []conformanceCase
	for _, dir := range dirs {
		var spec struct {
			Type        string `json:"type"`
			File        string `json:"file"`
			ShouldParse bool   `json:"shouldParse"`
		}
		raw, err := os.ReadFile(filepath.Join(dir, "test.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &spec); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if spec.Type != "text" {
			t.Fatalf("%s: unexpected vector type %q", dir, spec.Type)
		}
		data, err := os.ReadFile(filepath.Join(dir, spec.File))
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, conformanceCase{filepath.Base(dir), data, spec.ShouldParse})
	}
	if len(cases) != 211 {
		t.Fatalf("found %d conformance vectors, want 211", len(cases))
	}
	return cases
}

// TestOpenMetricsConformanceStrict: strict mode accepts exactly the vectors
// the OpenMetrics project marks shouldParse.
func TestOpenMetricsConformanceStrict(t *testing.T) {
	var p Parser
	p.SetStrict(true)
	agree := 0
	for _, c := range conformanceCases(t) {
		p.Reset(c.metrics, FormatOpenMetrics)
		for p.Next() {
		}
		err := p.Err()
		if (err == nil) != c.shouldParse {
			t.Errorf("%s: shouldParse=%v, got err=%v\n%s", c.name, c.shouldParse, err, c.metrics)
			continue
		}
		agree++
		if c.shouldParse {
			// Validation must not change what a valid payload yields.
			strict, _ := parseWithUs(&p, c.metrics, FormatOpenMetrics)
			var lenient Parser
			loose, _ := parseWithUs(&lenient, c.metrics, FormatOpenMetrics)
			if len(strict) != len(loose) {
				t.Errorf("%s: strict yields %d samples, lenient %d", c.name, len(strict), len(loose))
			}
			for i := range min(len(strict), len(loose)) {
				if strict[i] != loose[i] {
					t.Errorf("%s: sample %d strict %v lenient %v", c.name, i, strict[i], loose[i])
				}
			}
		}
	}
	t.Logf("strict mode agrees on %d vectors", agree)
}

// TestStrictRealOpenMetrics: strict verdicts on the real OpenMetrics
// payloads of the corpus, each checked by hand against the specification.
func TestStrictRealOpenMetrics(t *testing.T) {
	for _, c := range []struct {
		file    string
		errLine int // 0: valid
		why     string
	}{
		{"prometheus-textparse-1histogram.om", 0, "a plain histogram"},
		// client_golang wrote a histogram with negative buckets and a
		// negative _sum; OpenMetrics 1.0 forbids both, Prometheus takes it.
		{"prometheus-textparse-alltypes.5mfs.om", 33, "rpc_durations_histogram_seconds_sum -8.45e-05"},
	} {
		data, err := os.ReadFile(filepath.Join("testdata/corpus", c.file))
		if err != nil {
			t.Fatal(err)
		}
		var p Parser
		p.SetStrict(true)
		p.Reset(data, FormatOpenMetrics)
		for p.Next() {
		}
		var pe *ParseError
		switch {
		case c.errLine == 0 && p.Err() != nil:
			t.Errorf("%s (%s): %v", c.file, c.why, p.Err())
		case c.errLine != 0 && (!errors.As(p.Err(), &pe) || pe.Line != c.errLine):
			t.Errorf("%s: want an error on line %d (%s), got %v", c.file, c.errLine, c.why, p.Err())
		}
	}
}
