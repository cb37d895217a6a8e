package target

import (
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
)

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
	// Configurations that a key joining the limits' decimals and the relabel
	// replacement unseparated would confuse: "1"+"23" and "12"+"3" read the
	// same.
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
		if c.a.Key() == c.b.Key() {
			t.Errorf("%s: one key", c.name)
		}
		if c.a.Seed() != c.b.Seed() {
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
		{"label added", with(func(t *Target) {
			t.Labels = labels.FromStrings("instance", "10.0.0.1:8080", "job", "app", "x", "y")
		}), true},
		{"URL and labels boundary", Target{URL: base.URL + "job", Labels: labels.FromStrings("instance", "10.0.0.1:8080"), Interval: base.Interval, Timeout: base.Timeout}, true},
		{"discovered labels", with(func(t *Target) { t.Discovered = labels.FromStrings("__meta_kubernetes_namespace", "shop") }), false},
		{"interval", with(func(t *Target) { t.Interval = time.Minute }), false},
		{"timeout", with(func(t *Target) { t.Timeout = 5 * time.Second }), false},
		{"honor_labels", with(func(t *Target) { t.HonorLabels = true }), false},
		{"honor_timestamps", with(func(t *Target) { t.HonorTimestamps = true }), false},
		{"relabel rule", with(func(t *Target) { t.MetricRelabel = rule(func(*promrelabel.Config) {}) }), false},
		{"relabel action", with(func(t *Target) {
			t.MetricRelabel = rule(func(c *promrelabel.Config) { c.Action = promrelabel.Keep })
		}), false},
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
		{"HTTP settings", with(func(t *Target) { t.HTTP = &httpconfig.Config{} }), false},
		{"proxy", with(func(t *Target) { t.HTTP = &httpconfig.Config{Proxy: httpconfig.Proxy{URL: proxy}} }), false},
		{"own credentials", with(func(t *Target) { t.OwnCredentials = true }), false},
		{"source", with(func(t *Target) { t.Source = "ServiceMonitor shop/app" }), false},
		{"pool", with(func(t *Target) { t.Pool = "serviceMonitor/shop/app/0" }), false},
		{"drop reason", with(func(t *Target) { t.Drop.Reason = DroppedByRelabeling }), false},
		{"drop detail", with(func(t *Target) { t.Drop.Detail = "x" }), false},
		{"cluster", with(func(t *Target) { t.Cluster = true }), false},
		// A new Lease term starts the delta state afresh.
		{"term", with(func(t *Target) { t.Cluster, t.Term = true, "node-b/3" }), true},
	}
	keys := map[string]string{base.Key(): "base"}
	for _, c := range changes {
		k := c.t.Key()
		if other, ok := keys[k]; ok {
			t.Errorf("%s: the key of %s", c.name, other)
		}
		keys[k] = c.name
		if (c.t.Seed() != base.Seed()) != c.ident {
			t.Errorf("%s: changes the seed %v, want %v", c.name, c.t.Seed() != base.Seed(), c.ident)
		}
	}

	// The pool's limits are discovery's: a changed targetLimit does not
	// restart the loops of the targets it keeps.
	if pool := with(func(t *Target) { t.Limits.Targets, t.Limits.KeepDroppedTargets = 5, 7 }); pool.Key() != base.Key() {
		t.Error("Limits.Targets or KeepDroppedTargets change the key")
	}

	// Equal configurations, however built, have one key.
	a := with(func(t *Target) { t.MetricRelabel = rule(func(c *promrelabel.Config) { c.TargetLabel = "x" }) })
	b := with(func(t *Target) { t.MetricRelabel = rule(func(c *promrelabel.Config) { c.TargetLabel = "x" }) })
	if a.MetricRelabel[0] == b.MetricRelabel[0] || a.Key() != b.Key() {
		t.Error("equal configurations have different keys")
	}
}

// TestHTTPKey: HTTP settings that a key printed with fmt would confuse
// (maps with %v, where a Secret prints "<secret>"; strings unquoted, joined
// by "|") have different keys.
func TestHTTPKey(t *testing.T) {
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	oauth := func(params map[string]string) *httpconfig.Config {
		return &httpconfig.Config{OAuth2: &httpconfig.OAuth2{ClientID: "id", TokenURL: "https://idp/token", EndpointParams: params}}
	}
	connect := func(v httpconfig.Secret) *httpconfig.Config {
		return &httpconfig.Config{Proxy: httpconfig.Proxy{URL: mustURL("http://proxy:3128"), ConnectHeader: map[string][]httpconfig.Secret{"Proxy-Authorization": {v}}}}
	}
	cases := []struct {
		name string
		a, b *httpconfig.Config
	}{
		{"OAuth2 endpoint params a='b c:d' vs a=b, c=d", oauth(map[string]string{"a": "b c:d"}), oauth(map[string]string{"a": "b", "c": "d"})},
		{"rotated proxy CONNECT header secret", connect("Basic old"), connect("Basic new")},
		{"proxy URL query vs no_proxy", &httpconfig.Config{Proxy: httpconfig.Proxy{URL: mustURL("http://proxy?q|n")}},
			&httpconfig.Config{Proxy: httpconfig.Proxy{URL: mustURL("http://proxy?q"), NoProxy: "n|"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := Target{URL: "http://10.0.0.1:8080/metrics", HTTP: c.a}
			b := a
			b.HTTP = c.b
			if a.Key() == b.Key() {
				t.Error("one key")
			}
			if a.Seed() != b.Seed() {
				t.Error("HTTP settings change the target's identity")
			}
		})
	}
}

// TestHTTPKeyCoversEveryField sets each field of the HTTP settings, down to
// the nested TLS and proxy settings of OAuth2, in turn: each gives a key of
// its own, so a field added to httpconfig.Config but not to the key fails
// here.
func TestHTTPKeyCoversEveryField(t *testing.T) {
	// full has every pointer set and every leaf zero.
	full := func() *httpconfig.Config {
		return &httpconfig.Config{Authorization: &httpconfig.Authorization{}, BasicAuth: &httpconfig.BasicAuth{}, OAuth2: &httpconfig.OAuth2{}}
	}
	// set gives the n-th leaf of v (depth first) a non-zero value and says
	// whether there was one; n counts down the leaves passed.
	urlType := reflect.TypeFor[*url.URL]()
	var set func(v reflect.Value, n *int, path string) (string, bool)
	set = func(v reflect.Value, n *int, path string) (string, bool) {
		switch {
		case v.Type() == urlType:
		case v.Kind() == reflect.Pointer:
			return set(v.Elem(), n, path)
		case v.Kind() == reflect.Struct:
			for i := range v.NumField() {
				if p, ok := set(v.Field(i), n, path+"."+v.Type().Field(i).Name); ok {
					return p, true
				}
			}
			return "", false
		}
		if *n > 0 {
			*n--
			return "", false
		}
		switch v.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Uint16:
			v.SetUint(1)
		case reflect.Slice: // []string
			v.Set(reflect.ValueOf([]string{"x"}))
		case reflect.Map:
			m := reflect.MakeMap(v.Type())
			val := reflect.New(v.Type().Elem()).Elem()
			if val.Kind() == reflect.Slice {
				val = reflect.Append(val, reflect.ValueOf("x").Convert(val.Type().Elem()))
			} else {
				val.SetString("x")
			}
			m.SetMapIndex(reflect.ValueOf("k"), val)
			v.Set(m)
		case reflect.Pointer: // *url.URL
			v.Set(reflect.ValueOf(&url.URL{Scheme: "http", Host: "x"}))
		default:
			t.Fatalf("%s: a %s field; teach this test to set it", path, v.Type())
		}
		return path, true
	}
	base := Target{URL: "http://10.0.0.1:8080/metrics", HTTP: full()}
	keys := map[string]string{base.Key(): "all zero", (&Target{URL: base.URL}).Key(): "no HTTP settings"}
	fields := 0
	for i := 0; ; i++ {
		h := full()
		n := i
		path, ok := set(reflect.ValueOf(h), &n, "HTTPConfig")
		if !ok {
			break
		}
		fields++
		tg := base
		tg.HTTP = h
		k := tg.Key()
		if other, dup := keys[k]; dup {
			t.Errorf("%s set: the key of %s", path, other)
		}
		keys[k] = path
	}
	if fields < 30 {
		t.Fatalf("only %d fields set", fields)
	}
	t.Logf("%d fields, each its own key", fields)

	// A field added to these has to be added to Key (and to TestTargetKey).
	for typ, n := range map[reflect.Type]int{
		reflect.TypeFor[Target]():             16,
		reflect.TypeFor[Drop]():               2,
		reflect.TypeFor[Limits]():             7, // Targets, KeepDroppedTargets are not in Key
		reflect.TypeFor[promrelabel.Config](): 8,
	} {
		if typ.NumField() != n {
			t.Errorf("%s has %d fields, Key knows %d", typ, typ.NumField(), n)
		}
	}
}
