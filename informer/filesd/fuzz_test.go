package filesd

import (
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// FuzzParse: whatever a file holds, parse returns an error or targets that
// are each either dropped with a reason or a valid scrape target (a URL with
// a host, an interval, a timeout within it, no reserved label left), and
// never panics.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`- targets: ["127.0.0.1:9100"]
  labels: {team: a, __scheme__: https, __metrics_path__: /m, __param_x: y, __scrape_interval__: 10s}`,
		`[{"targets":["127.0.0.1:1","127.0.0.1:1/x"],"labels":{"__scrape_timeout__":"1m"}}]`,
		`[{"targets":["[::1]:9"],"labels":{"job":"j","instance":"i"}}]`,
		`[null]`, `[]`, `{}`, `- targets: [&a x, *a]`, "\xff\xfe",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := parse(Config{Path: "f.yaml"}, data)
		if err != nil {
			if !strings.Contains(err.Error(), "f.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for i, tg := range ts {
			if tg.Pool == "" || tg.Source != "file f.yaml" || tg.Discovered.Get("__meta_filepath") != "f.yaml" {
				t.Fatalf("target %d: pool %q source %q discovered %s", i, tg.Pool, tg.Source, tg.Discovered)
			}
			if tg.Drop.Reason != "" {
				if tg.Drop.Detail == "" || tg.URL != "" {
					t.Fatalf("target %d dropped without a detail, or with a URL: %+v", i, tg.Drop)
				}
				continue
			}
			u, err := url.Parse(tg.URL)
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				t.Fatalf("target %d: URL %q (%v)", i, tg.URL, err)
			}
			if tg.Interval <= 0 || tg.Timeout <= 0 || tg.Timeout > tg.Interval {
				t.Fatalf("target %d: interval %s timeout %s", i, tg.Interval, tg.Timeout)
			}
			if tg.Labels.Get("instance") == "" {
				t.Fatalf("target %d: no instance label: %s", i, tg.Labels)
			}
			tg.Labels.Range(func(l labels.Label) {
				if strings.HasPrefix(l.Name, "__") {
					t.Fatalf("target %d: reserved label %s left", i, l.Name)
				}
			})
		}
	})
}
