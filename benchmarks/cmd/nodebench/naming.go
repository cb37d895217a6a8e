package main

import (
	"hash/maphash"
	"slices"
	"strings"

	"github.com/nodescraper/nodescraper/ddclient"
)

// label is one name/value pair of an exposition series.
type label struct{ name, value string }

// kind is what the agent sends for a series: nothing, count deltas or gauge values.
type kind uint8

const (
	kindSkip  kind = iota // not sent: the +Inf bucket
	kindCount             // cumulative in the exposition, deltas on the wire
	kindGauge             // sent as scraped
)

// predict returns the Datadog metric, kind and tags the agent should send
// for one exposition sample, following the README's naming rules (those of
// Datadog's OpenMetrics check), Prometheus' target-label rule (a scraped
// label that clashes with a target label is kept as exported_<name>) and the
// agent's reserved tags (a label, scraped or the target's, named as a tag
// the agent owns, such as device or container_id, is sent as
// exported_<name>; ddclient.ReservedTag).
// famType is the family's # TYPE ("" for none), family its name, name the
// sample's name (family plus _bucket, _sum, _count for histograms and
// summaries). Labels with empty values are absent, as in Prometheus.
func predict(famType, family, name string, metric, target []label) (string, kind, []string) {
	tags := make([]string, 0, len(metric)+len(target)+1)
	le := ""
	for _, l := range metric {
		n := l.name
		if l.value == "" {
			continue // an empty label is no label, in Prometheus as in the agent
		}
		if famType == "histogram" && n == "le" && name == family+"_bucket" {
			le = l.value
			continue
		}
		if hasLabel(target, n) || ddclient.ReservedTag(n) {
			n = "exported_" + n
		}
		tags = append(tags, n+":"+l.value)
	}
	for _, l := range target {
		if l.value != "" {
			tags = append(tags, targetTag(l.name)+":"+l.value)
		}
	}
	switch {
	case famType == "counter" && name == family:
		return strings.TrimSuffix(name, "_total") + ".count", kindCount, tags
	case famType == "histogram" && name == family+"_bucket":
		if le == "+Inf" || le == "" {
			return "", kindSkip, nil
		}
		return family + ".bucket", kindCount, append(tags, "upper_bound:"+le)
	case (famType == "histogram" || famType == "summary") && name == family+"_sum":
		return family + ".sum", kindCount, tags
	case (famType == "histogram" || famType == "summary") && name == family+"_count":
		return family + ".count", kindCount, tags
	case famType == "summary" && name == family:
		return family + ".quantile", kindGauge, tags
	}
	return name, kindGauge, tags
}

// targetTag is the tag name of a target label.
func targetTag(name string) string {
	if ddclient.ReservedTag(name) {
		return "exported_" + name
	}
	return name
}

func hasLabel(ls []label, name string) bool {
	for _, l := range ls {
		if l.name == name {
			return true
		}
	}
	return false
}

// keyer identifies a Datadog series by metric, host and tag set, hashed to
// 64 bits (at a million series the chance of any collision is about 1e-7).
// Only tags whose key the harness itself produces take part, so tags the
// agent adds on its own (there are none in local mode today) do not stop a
// received series from matching its exporter series; received keys outside
// the set are counted in the report instead.
type keyer struct {
	seed  maphash.Seed
	known map[string]bool // tag keys the harness's series can carry
}

func newKeyer() *keyer {
	return &keyer{seed: maphash.MakeSeed(), known: map[string]bool{"upper_bound": true}}
}

// learn adds the tag keys of a series with these metric and target labels.
// It must be called for every label name before the agent starts.
func (k *keyer) learn(metric, target []label) {
	for _, l := range metric {
		k.known[l.name] = true
		if hasLabel(target, l.name) || ddclient.ReservedTag(l.name) {
			k.known["exported_"+l.name] = true
		}
	}
	for _, l := range target {
		k.known[targetTag(l.name)] = true
	}
}

// key hashes metric, host and the known tags of tags. It sorts tags in place
// and uses scratch (returned for reuse) to hold the known ones; unknown
// tag keys are passed to unknown when it is not nil.
func (k *keyer) key(metric, host string, tags []string, scratch []string, unknown func(key string)) (uint64, []string) {
	kept := scratch[:0]
	for _, t := range tags {
		name, _, _ := strings.Cut(t, ":")
		if k.known[name] {
			kept = append(kept, t)
		} else if unknown != nil {
			unknown(name)
		}
	}
	slices.Sort(kept)
	var h maphash.Hash
	h.SetSeed(k.seed)
	h.WriteString(metric)
	h.WriteByte(0)
	h.WriteString(host)
	for _, t := range kept {
		h.WriteByte(0)
		h.WriteString(t)
	}
	return h.Sum64(), kept
}
