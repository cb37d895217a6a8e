package selfmetrics

import (
	"io"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

func TestWriteWithHelp(t *testing.T) {
	metrics.ExposeMetadata(true)
	defer metrics.ExposeMetadata(false)
	set := metrics.NewSet()
	set.NewCounter(`a_total{x="1"}`).Inc()
	set.NewCounter(`a_total{x="2"}`).Add(2)
	set.NewGauge(`b`, func() float64 { return 3 })
	set.NewPrometheusHistogram(`c_seconds`).Update(0.2)
	set.NewCounter(`undocumented_total`).Inc()
	help := map[string]string{
		"a_total":   "As, by x.",
		"b":         `A \ and a` + "\nsecond line.",
		"c_seconds": "How long c takes.",
	}
	var b strings.Builder
	if err := WriteWithHelp(&b, help, set.WritePrometheus); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		"# HELP a_total As, by x.\n# TYPE a_total counter\na_total{x=\"1\"} 1\na_total{x=\"2\"} 2\n",
		"# HELP b A \\\\ and a\\nsecond line.\n# TYPE b gauge\nb 3\n",
		"# HELP c_seconds How long c takes.\n# TYPE c_seconds histogram\n",
		`c_seconds_bucket{le="0.25"} 1`,
		"# HELP undocumented_total\n# TYPE undocumented_total counter\nundocumented_total 1\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	// Nothing but the HELP lines changes.
	var plain strings.Builder
	set.WritePrometheus(&plain)
	strip := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(l, "# HELP ") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	if strip(got) != strip(plain.String()) {
		t.Errorf("lines other than HELP changed:\n%s\nwant\n%s", got, plain.String())
	}
}

func TestWriteWithHelpNoTrailingNewline(t *testing.T) {
	var b strings.Builder
	err := WriteWithHelp(&b, map[string]string{"x": "X."}, func(w io.Writer) { _, _ = io.WriteString(w, "# HELP x\nx 1") })
	if err != nil || b.String() != "# HELP x X.\nx 1" {
		t.Fatalf("got %q, %v", b.String(), err)
	}
}
