package scrapeloop

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
)

// promLabels is what Prometheus stores for the sample p is on: the sample's
// labels as its text parser gives them (empty values included), then
// scrape.mutateSampleLabels of Prometheus v0.315.0 (scrape/scrape.go),
// copied here as the reference. Two differences are the loop's by design:
// le and quantile values stay as written (Prometheus 3 rewrites "1" as
// "1.0"), and a series relabeled out of its name is dropped (Prometheus fails
// the scrape). ok is false for a dropped series.
func promLabels(p *exposition.Parser, t *target.Target) (lset labels.Labels, ok bool) {
	var sb labels.ScratchBuilder
	sb.Add(model.MetricNameLabel, string(p.Name()))
	for k := range p.NumLabels() {
		name, value := p.Label(k)
		sb.Add(string(name), string(value))
	}
	sb.Sort()
	scraped := sb.Labels()
	lb := labels.NewBuilder(scraped)
	if t.HonorLabels {
		t.Labels.Range(func(l labels.Label) {
			if !scraped.Has(l.Name) {
				lb.Set(l.Name, l.Value)
			}
		})
	} else {
		var conflicting []labels.Label
		t.Labels.Range(func(l labels.Label) {
			if v := scraped.Get(l.Name); v != "" {
				conflicting = append(conflicting, labels.Label{Name: l.Name, Value: v})
			}
			lb.Set(l.Name, l.Value)
		})
		slices.SortStableFunc(conflicting, func(a, b labels.Label) int { return len(a.Name) - len(b.Name) })
		for _, l := range conflicting {
			name := l.Name
			for {
				name = model.ExportedLabelPrefix + name
				if lb.Get(name) == "" {
					lb.Set(name, l.Value)
					break
				}
			}
		}
	}
	if !promrelabel.ProcessBuilder(lb, t.MetricRelabel...) {
		return labels.EmptyLabels(), false
	}
	out := lb.Labels()
	return out, out.Get(model.MetricNameLabel) != ""
}

// hasDuplicateNames says whether the sample repeats a label name (Prometheus
// refuses such a sample; the loop keeps the last value, not verbatim).
func hasDuplicateNames(p *exposition.Parser) bool {
	seen := map[string]bool{}
	for k := range p.NumLabels() {
		name, _ := p.Label(k)
		if seen[string(name)] {
			return true
		}
		seen[string(name)] = true
	}
	return false
}

type refSeries struct {
	labels labels.Labels
	kept   bool
	dup    bool
	// plain: no empty value, no repeated name, no exported_ label, at most
	// 32 labels. Without relabeling such a series must be verbatim.
	plain bool
}

func isPlain(p *exposition.Parser) bool {
	if p.NumLabels() > 32 || hasDuplicateNames(p) {
		return false
	}
	for k := range p.NumLabels() {
		name, value := p.Label(k)
		if len(value) == 0 || strings.HasPrefix(string(name), model.ExportedLabelPrefix) {
			return false
		}
	}
	return true
}

// reference parses body on its own and returns each series' labels by
// promLabels, by raw series.
func reference(t *testing.T, body []byte, ct string, tg *target.Target) map[string]refSeries {
	t.Helper()
	var p exposition.Parser
	p.Reset(body, exposition.FormatFor(ct))
	out := map[string]refSeries{}
	for p.Next() {
		if p.Role() == exposition.RoleCreated {
			continue
		}
		ls, kept := promLabels(&p, tg)
		out[string(p.Series())] = refSeries{labels: ls, kept: kept, dup: hasDuplicateNames(&p), plain: isPlain(&p)}
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkAgainstReference scrapes body once with every series a gauge (so each
// one added gets a point, and with it its raw series) and checks what the
// appender got against reference: the same series, each with Prometheus'
// labels. recAppender checks on every point that the Verbatim rules give
// Series.Labels exactly. It returns how many series were verbatim.
func checkAgainstReference(t *testing.T, tg target.Target, body []byte, ct string) (verbatim, total int) {
	t.Helper()
	e := newTestEnv(t, nil, t0, nil)
	e.backend.kind = allGauges
	tg.Limits.Labels = -1
	tl := e.loop(t, tg)
	ref := reference(t, body, ct, &tl.target)
	tl.mustFeed(t, string(body), ct)
	seen := map[string]bool{}
	for _, s := range tl.app.series() {
		if s.raw == "" {
			t.Errorf("series %s got no point", fmtLabels(s.Labels))
			continue
		}
		seen[s.raw] = true
		r, ok := ref[s.raw]
		switch {
		case !ok:
			t.Errorf("%s: not in the exposition", s.raw)
		case r.dup:
			if s.Verbatim {
				t.Errorf("%s: repeated label names, yet verbatim", s.raw)
			}
		case !r.kept:
			t.Errorf("%s: Prometheus drops it, the loop added %s", s.raw, fmtLabels(s.Labels))
		case !labels.Equal(s.Labels, r.labels):
			t.Errorf("%s: Series.Labels %s, Prometheus %s", s.raw, fmtLabels(s.Labels), fmtLabels(r.labels))
		}
		if ok && r.plain && len(tg.MetricRelabel) == 0 && tg.Labels.Len() <= 64 && !tg.Labels.Has(model.ExportedLabelPrefix+"job") && !s.Verbatim {
			t.Errorf("%s: not verbatim, though nothing but the Verbatim rules made %s", s.raw, fmtLabels(s.Labels))
		}
		total++
		if s.Verbatim {
			verbatim++
		}
	}
	for raw, r := range ref {
		if r.kept && !r.dup && !seen[raw] {
			t.Errorf("%s: Prometheus keeps it as %s, the loop added nothing", raw, fmtLabels(r.labels))
		}
	}
	return verbatim, total
}

// TestVerbatimRulesReconstructLabels: across series shapes, target labels,
// honor_labels and relabeling, Series.Labels are Prometheus' labels, and
// whenever Verbatim is set the Verbatim rules rebuild them exactly from the
// parser: what the Datadog encoder relies on to keep nothing per series.
func TestVerbatimRulesReconstructLabels(t *testing.T) {
	nLabels := func(name string, n int, last string) string { // n labels, the last one named last
		var b strings.Builder
		b.WriteString(name + "{")
		for i := range n - 1 {
			fmt.Fprintf(&b, "l%02d=\"v\",", i)
		}
		fmt.Fprintf(&b, "%s=\"x\"} 1", last)
		return b.String()
	}
	lines := []string{
		`m 1`,
		`m{a="1"} 1`,
		`m{b="2",a="1"} 1`,
		`m{job="x"} 1`,
		`m{job="x",instance="y"} 1`,
		`m{instance="y",a="1",job="x"} 1`,
		`m{job=""} 1`,
		`m{a=""} 1`,
		`m{a="1",b=""} 1`,
		`m{a="1",a="2"} 1`,
		`m{job="x",job="y"} 1`,
		`m{exported_job="e",job="x"} 1`,
		`m{exported_job="e"} 1`,
		`m{exported_exported_job="ee",exported_job="e",job="x"} 1`,
		`m{a="q\"\\n\n"} 1`,
		`{"m.x","a.b"="1",job="x"} 1`,
		`m_bucket{le="0.5",job="x"} 1`,
		nLabels("wide32", 32, "job"),  // the clash at label 31: the last exported bit
		nLabels("wide33", 33, "job"),  // 33 labels: past the bits
		nLabels("wide33b", 33, "yyy"), // 33 labels, no clash
		`m{zzz="x"} 1`,                // a clash with the 64th target label: the last omitted bit
	}
	body := []byte(strings.Join(lines, "\n") + "\n")
	wide := func(n int) labels.Labels { // n target labels, zzz the last
		var sb labels.ScratchBuilder
		for i := range n - 1 {
			sb.Add(fmt.Sprintf("t%02d", i), "v")
		}
		sb.Add("zzz", "w")
		return sb.Labels()
	}
	targets := []struct {
		name   string
		labels labels.Labels
	}{
		{"no target labels", labels.EmptyLabels()},
		{"job", labels.FromStrings("job", "app")},
		{"instance and job", labels.FromStrings("instance", "10.0.0.1:9100", "job", "app")},
		{"exported_job and job", labels.FromStrings("exported_job", "t", "job", "app")},
		{"a, b and job", labels.FromStrings("a", "A", "b", "B", "job", "app")},
		{"64 target labels", wide(64)},
		{"65 target labels", wide(65)},
	}
	relabels := []struct{ name, yaml string }{
		{"no relabeling", ""},
		{"labeldrop", "- regex: a|instance\n  action: labeldrop\n"},
		{"replace to the same value", "- source_labels: [a]\n  target_label: a\n"},
		{"replace adds a label", "- target_label: env\n  replacement: prod\n"},
		{"replace rewrites a value", "- source_labels: [job]\n  regex: (.+)\n  target_label: job\n  replacement: j-$1\n"},
		{"keep", "- source_labels: [__name__]\n  regex: m|wide.*\n  action: keep\n"},
		{"labelmap", "- regex: (job|instance)\n  replacement: src_$1\n  action: labelmap\n"},
	}
	for _, tgt := range targets {
		for _, honor := range []bool{false, true} {
			for _, rl := range relabels {
				t.Run(fmt.Sprintf("%s/honor=%v/%s", tgt.name, honor, rl.name), func(t *testing.T) {
					tg := target.Target{Labels: tgt.labels, HonorLabels: honor}
					if rl.yaml != "" {
						tg.MetricRelabel = mustRelabel(t, rl.yaml)
					}
					verbatim, total := checkAgainstReference(t, tg, body, textCT)
					// Not vacuous: without relabeling, the series without
					// empty or repeated labels are verbatim while the target
					// has at most 64 labels.
					if rl.yaml == "" && tgt.labels.Len() <= 64 && verbatim < 5 {
						t.Errorf("only %d of %d series verbatim", verbatim, total)
					}
					if tgt.labels.Len() > 64 && verbatim > 0 {
						t.Errorf("%d series verbatim with more target labels than Omitted has bits", verbatim)
					}
				})
			}
		}
	}
}

// TestVerbatimRulesOnCorpus is the same check on real expositions, scraped
// with the labels a prometheus-operator ServiceMonitor gives (the exporters'
// own namespace, pod and container labels clash with them).
func TestVerbatimRulesOnCorpus(t *testing.T) {
	files := []struct{ name, ct string }{
		{"node_exporter-e2e-output.prom", textCT},
		{"k8s135-kube-state-metrics.prom", textCT},
		{"k8s135-kubelet-cadvisor.prom", textCT},
		{"dd-coredns.prom", textCT},
		{"dd-istio-mesh.prom", textCT},
		{"prometheus-textparse-alltypes.5mfs.om", omCT},
	}
	targetLabels := labels.FromStrings("container", "exporter", "endpoint", "http", "instance", "10.0.0.7:8080",
		"job", "exporter", "namespace", "monitoring", "pod", "exporter-0", "service", "exporter")
	relabel := mustRelabel(t, `
- source_labels: [__name__]
  regex: go_.*
  action: drop
- regex: id|name
  action: labeldrop
- source_labels: [__name__, pod]
  regex: kube_pod_info;(.+)
  target_label: pod_name
`)
	for _, f := range files {
		body, err := os.ReadFile("exposition/testdata/corpus/" + f.name)
		if err != nil {
			t.Fatal(err)
		}
		for _, honor := range []bool{false, true} {
			for _, mr := range [][]*promrelabel.Config{nil, relabel} {
				t.Run(fmt.Sprintf("%s/honor=%v/relabel=%v", f.name, honor, mr != nil), func(t *testing.T) {
					verbatim, total := checkAgainstReference(t, target.Target{Labels: targetLabels, HonorLabels: honor, MetricRelabel: mr}, body, f.ct)
					t.Logf("%d series, %d verbatim", total, verbatim)
				})
			}
		}
	}
}
