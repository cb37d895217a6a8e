package relabel

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
)

// Defaults are the scrape settings of the job a label set was discovered for,
// used where the label set does not override them.
type Defaults struct {
	Job         string
	Scheme      string        // default "http"
	MetricsPath string        // default "/metrics"
	Interval    time.Duration // default 30s
	Timeout     time.Duration // default min(10s, Interval)
	Params      url.Values
}

// ErrDropped reports that relabeling dropped the label set.
var ErrDropped = errors.New("dropped by relabeling")

// Populate applies cfgs to lset and then Prometheus' target rules. It returns
// ErrDropped when relabeling drops the target, and a descriptive error when the
// result is not a valid target.
func Populate(lset labels.Labels, cfgs []*promrelabel.Config, d Defaults) (target.Target, error) {
	b := labels.NewBuilder(lset)
	d.setDefaults(b)
	if !promrelabel.ProcessBuilder(b, cfgs...) {
		return target.Target{}, ErrDropped
	}
	lset = b.Labels()
	addr := lset.Get(model.AddressLabel)
	if addr == "" {
		return target.Target{}, errors.New("no __address__ label")
	}
	if strings.ContainsAny(addr, "/@?#") {
		return target.Target{}, fmt.Errorf("__address__ %q is not a host:port", addr)
	}
	interval, err := parseDuration(lset, model.ScrapeIntervalLabel)
	if err != nil {
		return target.Target{}, err
	}
	timeout, err := parseDuration(lset, model.ScrapeTimeoutLabel)
	if err != nil {
		return target.Target{}, err
	}
	if timeout > interval {
		return target.Target{}, fmt.Errorf("scrape timeout %s greater than scrape interval %s", timeout, interval)
	}
	scheme := lset.Get(model.SchemeLabel)
	if scheme != "http" && scheme != "https" {
		return target.Target{}, fmt.Errorf("__scheme__ %q: want http or https", scheme)
	}
	params := url.Values{}
	for k, v := range d.Params {
		params[k] = append([]string(nil), v...)
	}
	out := labels.NewBuilder(labels.EmptyLabels())
	lset.Range(func(l labels.Label) {
		if name, ok := strings.CutPrefix(l.Name, model.ParamLabelPrefix); ok {
			if len(params[name]) == 0 {
				params[name] = []string{l.Value}
			} else {
				params[name][0] = l.Value
			}
		}
		if !strings.HasPrefix(l.Name, model.ReservedLabelPrefix) {
			out.Set(l.Name, l.Value)
		}
	})
	if out.Get(model.InstanceLabel) == "" {
		out.Set(model.InstanceLabel, addr)
	}
	u := &url.URL{Scheme: scheme, Host: addr, Path: lset.Get(model.MetricsPathLabel), RawQuery: params.Encode()}
	// url.URL.String escapes a host it cannot hold ("a b" → "a%20b"), which
	// no HTTP client parses back: such an address is no target (found by
	// fuzzing file_sd).
	rawURL := u.String()
	if _, err := url.Parse(rawURL); err != nil {
		return target.Target{}, fmt.Errorf("__address__ %q is not a host:port", addr)
	}
	return target.Target{URL: rawURL, Labels: out.Labels(), Interval: interval, Timeout: timeout}, nil
}

// setDefaults gives b the job's settings as the labels relabeling may read
// and override (job, interval, timeout, path, scheme, params), with
// Prometheus' defaults where the job sets none.
func (d Defaults) setDefaults(b *labels.Builder) {
	if d.Scheme == "" {
		d.Scheme = "http"
	}
	if d.MetricsPath == "" {
		d.MetricsPath = "/metrics"
	}
	if d.Interval <= 0 {
		d.Interval = 30 * time.Second
	}
	if d.Timeout <= 0 {
		d.Timeout = min(10*time.Second, d.Interval)
	}
	setDefault := func(name, value string) {
		if b.Get(name) == "" {
			b.Set(name, value)
		}
	}
	if d.Job != "" {
		setDefault(model.JobLabel, d.Job)
	}
	setDefault(model.ScrapeIntervalLabel, model.Duration(d.Interval).String())
	setDefault(model.ScrapeTimeoutLabel, model.Duration(d.Timeout).String())
	setDefault(model.MetricsPathLabel, d.MetricsPath)
	setDefault(model.SchemeLabel, d.Scheme)
	for k, v := range d.Params {
		if len(v) > 0 {
			setDefault(model.ParamLabelPrefix+k, v[0])
		}
	}
}

func parseDuration(lset labels.Labels, name string) (time.Duration, error) {
	s := lset.Get(name)
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", name, s, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s %q: must be positive", name, s)
	}
	return time.Duration(d), nil
}
