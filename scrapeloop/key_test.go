package scrapeloop

import (
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/relabel"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
)

// oldLimitsKey is how the key once ended: the limits' decimals and the
// relabel replacement run together, unseparated.
func oldLimitsKey(t *Target) string {
	var b []byte
	for _, c := range t.MetricRelabel {
		b = append(b, c.Replacement...)
	}
	for _, n := range []int64{t.Limits.BodySize, int64(t.Limits.Samples), int64(t.Limits.Labels), int64(t.Limits.LabelNameLength), int64(t.Limits.LabelValueLength)} {
		b = strconv.AppendInt(b, n, 10)
	}
	return string(b)
}

func TestTargetKey(t *testing.T) {
	base := Target{URL: "http://10.0.0.1:8080/metrics", Labels: labels.FromStrings("instance", "10.0.0.1:8080", "job", "app"),
		Interval: 30 * time.Second, Timeout: 10 * time.Second}
	with := func(f func(*Target)) Target {
		tg := base
		f(&tg)
		return tg
	}
	rule := func(f func(*promrelabel.Config)) []*promrelabel.Config {
		c := promrelabel.DefaultRelabelConfig
		c.Regex = promrelabel.MustNewRegexp("(.*)")
		f(&c)
		return []*promrelabel.Config{&c}
	}
	// Configurations the unseparated key confused.
	confused := []struct {
		name string
		a, b Target
	}{
		{"samples 1, labels 23 vs samples 12, labels 3",
			with(func(t *Target) { t.Limits = Limits{Samples: 1, Labels: 23} }),
			with(func(t *Target) { t.Limits = Limits{Samples: 12, Labels: 3} })},
		{"name length 1, value length 23 vs 12, 3",
			with(func(t *Target) { t.Limits = Limits{LabelNameLength: 1, LabelValueLength: 23} }),
			with(func(t *Target) { t.Limits = Limits{LabelNameLength: 12, LabelValueLength: 3} })},
		{"body size 1, samples 11 vs body size 11, samples 1",
			with(func(t *Target) { t.Limits = Limits{BodySize: 1, Samples: 11} }),
			with(func(t *Target) { t.Limits = Limits{BodySize: 11, Samples: 1} })},
		{"samples -1, labels 20 vs samples -12",
			with(func(t *Target) { t.Limits = Limits{Samples: -1, Labels: 20} }),
			with(func(t *Target) { t.Limits = Limits{Samples: -12} })},
		{"replacement x1 vs replacement x, body size 10",
			with(func(t *Target) { t.MetricRelabel = rule(func(c *promrelabel.Config) { c.Replacement = "x1" }) }),
			with(func(t *Target) {
				t.MetricRelabel = rule(func(c *promrelabel.Config) { c.Replacement = "x" })
				t.Limits.BodySize = 10
			})},
	}
	for _, c := range confused {
		if oldLimitsKey(&c.a) != oldLimitsKey(&c.b) {
			t.Errorf("%s: not a pair the old key confused", c.name)
		}
		if c.a.Key() == c.b.Key() {
			t.Errorf("%s: one key", c.name)
		}
		if c.a.seed() != c.b.seed() {
			t.Errorf("%s: configurations of one target have different seeds", c.name)
		}
	}

	// Every field of a target's configuration is in its key; only the URL
	// and the labels are in its seed.
	proxy, _ := url.Parse("http://proxy:3128")
	changes := []struct {
		name  string
		t     Target
		ident bool // changes the target's identity (seed)
	}{
		{"URL", with(func(t *Target) { t.URL = "http://10.0.0.1:8081/metrics" }), true},
		{"URL query", with(func(t *Target) { t.URL += "?collect[]=cpu" }), true},
		{"label value", with(func(t *Target) { t.Labels = labels.FromStrings("instance", "10.0.0.1:8080", "job", "app2") }), true},
		{"label added", with(func(t *Target) { t.Labels = labels.FromStrings("instance", "10.0.0.1:8080", "job", "app", "x", "y") }), true},
		{"URL and labels boundary", Target{URL: base.URL + "job", Labels: labels.FromStrings("instance", "10.0.0.1:8080"), Interval: base.Interval, Timeout: base.Timeout}, true},
		{"discovered labels", with(func(t *Target) { t.Discovered = labels.FromStrings("__meta_kubernetes_namespace", "shop") }), false},
		{"interval", with(func(t *Target) { t.Interval = time.Minute }), false},
		{"timeout", with(func(t *Target) { t.Timeout = 5 * time.Second }), false},
		{"honor_labels", with(func(t *Target) { t.HonorLabels = true }), false},
		{"honor_timestamps", with(func(t *Target) { t.HonorTimestamps = true }), false},
		{"relabel rule", with(func(t *Target) { t.MetricRelabel = rule(func(*promrelabel.Config) {}) }), false},
		{"relabel action", with(func(t *Target) { t.MetricRelabel = rule(func(c *promrelabel.Config) { c.Action = promrelabel.Keep }) }), false},
		{"relabel source labels", with(func(t *Target) {
			t.MetricRelabel = rule(func(c *promrelabel.Config) { c.SourceLabels = model.LabelNames{"a"} })
		}), false},
		{"relabel separator", with(func(t *Target) { t.MetricRelabel = rule(func(c *promrelabel.Config) { c.Separator = "," }) }), false},
		{"relabel regex", with(func(t *Target) {
			t.MetricRelabel = rule(func(c *promrelabel.Config) { c.Regex = promrelabel.MustNewRegexp("a.*") })
		}), false},
		{"relabel modulus", with(func(t *Target) { t.MetricRelabel = rule(func(c *promrelabel.Config) { c.Modulus = 8 }) }), false},
		{"relabel target label", with(func(t *Target) { t.MetricRelabel = rule(func(c *promrelabel.Config) { c.TargetLabel = "x" }) }), false},
		{"relabel replacement", with(func(t *Target) { t.MetricRelabel = rule(func(c *promrelabel.Config) { c.Replacement = "y" }) }), false},
		{"body size limit", with(func(t *Target) { t.Limits.BodySize = 1 }), false},
		{"sample limit", with(func(t *Target) { t.Limits.Samples = 1 }), false},
		{"label limit", with(func(t *Target) { t.Limits.Labels = 1 }), false},
		{"label name length limit", with(func(t *Target) { t.Limits.LabelNameLength = 1 }), false},
		{"label value length limit", with(func(t *Target) { t.Limits.LabelValueLength = 1 }), false},
		{"no limit", with(func(t *Target) { t.Limits.Samples = -1 }), false},
		{"HTTP settings", with(func(t *Target) { t.HTTP = &relabel.HTTPConfig{} }), false},
		{"proxy", with(func(t *Target) { t.HTTP = &relabel.HTTPConfig{Proxy: relabel.ProxyConfig{URL: proxy}} }), false},
		{"source", with(func(t *Target) { t.Source = "ServiceMonitor shop/app" }), false},
	}
	keys := map[string]string{base.Key(): "base"}
	for _, c := range changes {
		k := c.t.Key()
		if other, ok := keys[k]; ok {
			t.Errorf("%s: the key of %s", c.name, other)
		}
		keys[k] = c.name
		if (c.t.seed() != base.seed()) != c.ident {
			t.Errorf("%s: changes the seed %v, want %v", c.name, c.t.seed() != base.seed(), c.ident)
		}
	}

	// Equal configurations, however built, have one key.
	a := with(func(t *Target) { t.MetricRelabel = rule(func(c *promrelabel.Config) { c.TargetLabel = "x" }) })
	b := with(func(t *Target) { t.MetricRelabel = rule(func(c *promrelabel.Config) { c.TargetLabel = "x" }) })
	if a.MetricRelabel[0] == b.MetricRelabel[0] || a.Key() != b.Key() {
		t.Error("equal configurations have different keys")
	}
}
