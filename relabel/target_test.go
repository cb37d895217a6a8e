package relabel

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v2"
)

func TestPopulate(t *testing.T) {
	d := Defaults{Job: "static", Interval: 15 * time.Second}
	cases := []struct {
		name     string
		in       labels.Labels
		relabel  string
		url      string
		labels   string
		interval time.Duration
		timeout  time.Duration
		err      string
		dropped  bool
	}{
		{name: "defaults", in: labels.FromStrings("__address__", "127.0.0.1:9100", "team", "a"),
			url: "http://127.0.0.1:9100/metrics", labels: `{instance="127.0.0.1:9100", job="static", team="a"}`,
			interval: 15 * time.Second, timeout: 10 * time.Second},
		{name: "scheme path params and instance honoured",
			in: labels.FromStrings("__address__", "127.0.0.2:8443", "__scheme__", "https", "__metrics_path__", "/x/metrics",
				"__param_module", "http_2xx", "instance", "pod-a", "job", "mine", "__meta_kubernetes_pod_name", "p"),
			url: "https://127.0.0.2:8443/x/metrics?module=http_2xx", labels: `{instance="pod-a", job="mine"}`,
			interval: 15 * time.Second, timeout: 10 * time.Second},
		{name: "per-target interval and timeout",
			in:  labels.FromStrings("__address__", "127.0.0.1:1", "__scrape_interval__", "5s", "__scrape_timeout__", "2s"),
			url: "http://127.0.0.1:1/metrics", labels: `{instance="127.0.0.1:1", job="static"}`,
			interval: 5 * time.Second, timeout: 2 * time.Second},
		{name: "relabel rewrites the address",
			in:      labels.FromStrings("__address__", "127.0.0.1:1", "__meta_port", "9200"),
			relabel: "- source_labels: [__meta_port]\n  target_label: __address__\n  replacement: 127.0.0.9:$1\n",
			url:     "http://127.0.0.9:9200/metrics", labels: `{instance="127.0.0.9:9200", job="static"}`,
			interval: 15 * time.Second, timeout: 10 * time.Second},
		{name: "relabel drop", in: labels.FromStrings("__address__", "127.0.0.1:1"),
			relabel: "- action: drop\n  source_labels: [job]\n  regex: static\n", dropped: true},
		{name: "no address", in: labels.FromStrings("a", "b"), err: "no __address__ label"},
		{name: "timeout above interval", in: labels.FromStrings("__address__", "h:1", "__scrape_timeout__", "20s"),
			err: "scrape timeout 20s greater than scrape interval 15s"},
		{name: "bad scheme", in: labels.FromStrings("__address__", "h:1", "__scheme__", "ftp"), err: `__scheme__ "ftp": want http or https`},
		{name: "address with path", in: labels.FromStrings("__address__", "h:1/x"), err: `__address__ "h:1/x" is not a host:port`},
		{name: "address with a space", in: labels.FromStrings("__address__", "0 0"), err: `__address__ "0 0" is not a host:port`},
		{name: "bad interval", in: labels.FromStrings("__address__", "h:1", "__scrape_interval__", "soon"), err: `__scrape_interval__ "soon": not a valid duration string: "soon"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cfgs []*promrelabel.Config
			if c.relabel != "" {
				if err := yaml.UnmarshalStrict([]byte(c.relabel), &cfgs); err != nil {
					t.Fatal(err)
				}
				for _, cfg := range cfgs {
					if err := cfg.Validate(model.UTF8Validation); err != nil {
						t.Fatal(err)
					}
				}
			}
			got, err := Populate(c.in, cfgs, d)
			switch {
			case c.dropped:
				if !errors.Is(err, ErrDropped) {
					t.Fatalf("err = %v, want ErrDropped", err)
				}
				return
			case c.err != "":
				if err == nil || err.Error() != c.err {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if got.URL != c.url || got.Labels.String() != c.labels || got.Interval != c.interval || got.Timeout != c.timeout {
				t.Fatalf("got %s %s %s/%s, want %s %s %s/%s", got.URL, got.Labels, got.Interval, got.Timeout, c.url, c.labels, c.interval, c.timeout)
			}
		})
	}
}
