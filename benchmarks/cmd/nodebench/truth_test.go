package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// simulate plays the agent's delta rule over scrapes 1..kf of src: a count
// series' first sight is a baseline at the target's first scrape and counts
// whole when it appears later; a gauge keeps its last value. It returns the
// sums and last values by series key, parsing what src renders back through
// loadFileTarget, independently of src's own expect.
func simulate(t *testing.T, src source, target []label, keys *keyer, kf int) map[uint64]float64 {
	t.Helper()
	last := map[uint64]float64{}
	out := map[uint64]float64{}
	path := filepath.Join(t.TempDir(), "scrape.prom")
	for k := 1; k <= kf; k++ {
		body, n := src.render(nil, k)
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
		ft, err := loadFileTarget(path)
		if err != nil {
			t.Fatalf("scrape %d does not parse back: %v", k, err)
		}
		if ft.samples != n {
			t.Fatalf("scrape %d: render says %d samples, the body has %d", k, n, ft.samples)
		}
		for i := range ft.lines {
			l := &ft.lines[i]
			typ, fam, name, ls := ft.series(l)
			metric, kd, tags := predict(typ, fam, name, ls, target)
			if kd == kindSkip {
				continue
			}
			key, _ := keys.key(metric, nodeName, tags, nil, func(k string) { t.Fatalf("tag key %q not learnt", k) })
			v := parseValue(t, ft, l)
			prev, seen := last[key]
			switch {
			case kd == kindGauge:
				out[key] = v
			case seen:
				out[key] += v - prev
			case k > 1:
				out[key] += v // a series born after the first scrape counts whole
			default:
				out[key] += 0 // the baseline: seen, nothing counted yet
			}
			last[key] = v
		}
	}
	return out
}

func parseValue(t *testing.T, ft *fileTarget, l *fileLine) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(string(ft.data[l.valStart:l.valEnd]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestTruthMatchesServedValues(t *testing.T) {
	for _, churn := range []bool{false, true} {
		target := []label{{"job", "api"}, {"namespace", "payments"}, {"pod", "api-1"}, {"instance", "127.0.100.1:9100"}}
		src := newSynthTarget(7, 400, churn, bundle(), 1_700_000_000)
		keys := newKeyer()
		src.learn(keys, target)
		const kf = 23 // several churn generations
		got := simulate(t, src, target, keys, kf)
		n, counts := 0, 0
		src.expect(target, 1, kf, func(metric string, kd kind, tags []string, want float64) {
			n++
			if kd == kindCount {
				counts++
			}
			key, _ := keys.key(metric, nodeName, tags, nil, nil)
			if g := got[key]; g != want {
				t.Errorf("churn=%t %s %v: served values give %v, expect says %v", churn, metric, tags, g, want)
			}
		})
		if n != len(got) {
			t.Errorf("churn=%t: expect covers %d series, the scrapes had %d", churn, n, len(got))
		}
		if counts*10 < n*7 {
			t.Errorf("churn=%t: %d of %d series are counts, want most", churn, counts, n)
		}
	}
}

func TestFileTargetTruth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ksm.prom")
	payload := `# HELP kube_pod_container_status_restarts_total restarts
# TYPE kube_pod_container_status_restarts_total counter
kube_pod_container_status_restarts_total{namespace="a",pod="p\"1",uid="u",container="c"} 3
kube_pod_container_status_restarts_total{namespace="a",pod="p2",uid="u2",container="c"} 0
# TYPE kube_pod_annotations gauge
kube_pod_annotations{namespace="a",pod="p1",annotation_x="line one\nline two"} 1
kube_pod_created{namespace="a",pod="p1",priority_class=""} 1.7e+09
`
	if err := os.WriteFile(path, []byte(payload), 0o644); err != nil {
		t.Fatal(err)
	}
	ft, err := loadFileTarget(path)
	if err != nil {
		t.Fatal(err)
	}
	target := []label{{"job", "kube-state-metrics"}, {"namespace", "monitoring"}, {"pod", "ksm-0"}, {"instance", "127.0.100.1:8080"}}
	keys := newKeyer()
	ft.learn(keys, target)
	got := simulate(t, ft, target, keys, 5)
	n := 0
	ft.expect(target, 1, 5, func(metric string, kd kind, tags []string, want float64) {
		n++
		key, _ := keys.key(metric, nodeName, tags, nil, nil)
		if got[key] != want {
			t.Errorf("%s %v: served %v, expect %v", metric, tags, got[key], want)
		}
	})
	if n != 4 || len(got) != 4 {
		t.Errorf("expect covers %d series, scrapes %d; want 4", n, len(got))
	}
	m, _, tags := predict("gauge", "kube_pod_annotations", "kube_pod_annotations", []label{{"pod", "x"}}, target)
	if m != "kube_pod_annotations" || tags[0] != "exported_pod:x" {
		t.Errorf("clashing label: got %s %v, want exported_pod", m, tags)
	}
	if _, _, tags := predict("gauge", "g", "g", []label{{"container_id", "containerd://1"}}, target); tags[0] != "exported_container_id:containerd://1" {
		t.Errorf("reserved label: got %v, want exported_container_id", tags)
	}
	if _, _, tags := predict("gauge", "g", "g", []label{{"pod_cidr", ""}}, target); len(tags) != len(target) {
		t.Errorf("empty label: got tags %v, want only the target's", tags)
	}
}
