package exposition

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpusFiles lists the real payloads of testdata/corpus.
func corpusFiles(t testing.TB) []string {
	files, err := filepath.Glob("testdata/corpus/*.prom")
	if err != nil {
		t.Fatal(err)
	}
	om, err := filepath.Glob("testdata/corpus/*.om")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, om...)
	if len(files) < 25 {
		t.Fatalf("only %d corpus files found", len(files))
	}
	return files
}

func formatOfFile(name string) Format {
	if strings.HasSuffix(name, ".om") {
		return FormatOpenMetrics
	}
	return FormatPrometheus
}

// diffRecs reports the first few differences between two sample lists.
func diffRecs(t *testing.T, want, got []rec) {
	t.Helper()
	n := 0
	for i := 0; i < max(len(want), len(got)) && n < 5; i++ {
		var w, g rec
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g && intentionalDifference(w, g) == "" {
			t.Errorf("sample %d:\n textparse: %v\n ours:      %v", i, w, g)
			n++
		}
	}
	if len(want) != len(got) {
		t.Errorf("textparse has %d samples, ours %d", len(want), len(got))
	}
}

// TestDifferentialCorpus checks every real payload against Prometheus'
// textparse: same series, bit-identical values, timestamps, types and
// (OpenMetrics) created timestamps.
func TestDifferentialCorpus(t *testing.T) {
	var p Parser
	for _, file := range corpusFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			f := formatOfFile(file)
			want, werr := parseWithTextparse(data, f)
			got, gerr := parseWithUs(&p, data, f)
			switch {
			case werr != nil && gerr == nil:
				t.Errorf("textparse rejects, ours accepts: %v", werr)
			case werr == nil && gerr != nil:
				t.Errorf("ours rejects, textparse accepts: %v", gerr)
			case werr != nil:
				// Some corpus files are broken (a UTF-8 BOM, "# TYPE x
				// summary IMP"): a Prometheus scrape of them fails, so ours
				// must fail too, after the same samples.
				t.Logf("both reject:\n textparse: %v\n ours:      %v", werr, gerr)
			}
			if len(want) == 0 && werr == nil {
				t.Fatal("no samples")
			}
			diffRecs(t, want, got)
		})
	}
}
