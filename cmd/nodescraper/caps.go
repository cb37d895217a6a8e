package main

import (
	"flag"
	"fmt"

	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
)

// monitorCaps are what the operator imposes on every monitor, with the
// names and semantics of the Prometheus resource's fields that
// Prometheus-Operator applies (enforcedSampleLimit, ..., enforcedBodySizeLimit,
// enforcedNamespaceLabel, ignoreNamespaceSelectors, overrideHonorLabels,
// overrideHonorTimestamps): a monitor may ask for less, never for more.
type monitorCaps struct {
	limits                                 target.Limits // 0: no cap
	namespaceLabel                         string
	ignoreNamespaceSelectors               bool
	overrideHonorLabels, overrideHonorTime bool
}

func (m *monitorCaps) flags(fs *flag.FlagSet, e *envDefaults) {
	limit := func(p *int64, name, env, what string) {
		fs.Int64Var(p, name, int64(e.int(env, 0)), "the most "+what+" a monitor may ask for; one that asks for more, or for none, gets this (the Operator's "+
			"enforced limits); 0 = no cap (env "+env+")")
	}
	limit(&m.limits.Samples, "enforced-sample-limit", "NODESCRAPER_ENFORCED_SAMPLE_LIMIT", "samples per scrape (sampleLimit)")
	limit(&m.limits.Targets, "enforced-target-limit", "NODESCRAPER_ENFORCED_TARGET_LIMIT", "targets per monitor endpoint on this node (targetLimit)")
	limit(&m.limits.Labels, "enforced-label-limit", "NODESCRAPER_ENFORCED_LABEL_LIMIT", "labels per series (labelLimit)")
	limit(&m.limits.LabelNameLength, "enforced-label-name-length-limit", "NODESCRAPER_ENFORCED_LABEL_NAME_LENGTH_LIMIT", "bytes of a label name (labelNameLengthLimit)")
	limit(&m.limits.LabelValueLength, "enforced-label-value-length-limit", "NODESCRAPER_ENFORCED_LABEL_VALUE_LENGTH_LIMIT", "bytes of a label value (labelValueLengthLimit)")
	limit(&m.limits.BodySize, "enforced-body-size-limit", "NODESCRAPER_ENFORCED_BODY_SIZE_LIMIT", "uncompressed body bytes (bodySizeLimit)")
	limit(&m.limits.KeepDroppedTargets, "enforced-keep-dropped-targets", "NODESCRAPER_ENFORCED_KEEP_DROPPED_TARGETS", "dropped targets kept per monitor endpoint (keepDroppedTargets)")
	fs.StringVar(&m.namespaceLabel, "enforced-namespace-label", e.str("NODESCRAPER_ENFORCED_NAMESPACE_LABEL", ""), "label set to the monitor's namespace on every target and series, last, so no relabeling overrides it (the Operator's enforcedNamespaceLabel) (env NODESCRAPER_ENFORCED_NAMESPACE_LABEL)")
	fs.BoolVar(&m.ignoreNamespaceSelectors, "ignore-namespace-selectors", e.bool("NODESCRAPER_IGNORE_NAMESPACE_SELECTORS", false), "monitors discover in their own namespace only, whatever their namespaceSelector (the Operator's ignoreNamespaceSelectors) (env NODESCRAPER_IGNORE_NAMESPACE_SELECTORS)")
	fs.BoolVar(&m.overrideHonorLabels, "override-honor-labels", e.bool("NODESCRAPER_OVERRIDE_HONOR_LABELS", false), "honorLabels is false for every monitor: a target's labels never override the target labels (env NODESCRAPER_OVERRIDE_HONOR_LABELS)")
	fs.BoolVar(&m.overrideHonorTime, "override-honor-timestamps", e.bool("NODESCRAPER_OVERRIDE_HONOR_TIMESTAMPS", false), "honorTimestamps is false for every monitor (env NODESCRAPER_OVERRIDE_HONOR_TIMESTAMPS)")
}

func (m *monitorCaps) validate() error {
	for _, l := range []struct {
		flag string
		v    int64
	}{
		{"--enforced-sample-limit", m.limits.Samples}, {"--enforced-target-limit", m.limits.Targets},
		{"--enforced-label-limit", m.limits.Labels}, {"--enforced-label-name-length-limit", m.limits.LabelNameLength},
		{"--enforced-label-value-length-limit", m.limits.LabelValueLength}, {"--enforced-body-size-limit", m.limits.BodySize},
		{"--enforced-keep-dropped-targets", m.limits.KeepDroppedTargets},
	} {
		if l.v < 0 {
			return fmt.Errorf("%s %d: want a positive number, or 0 for no cap", l.flag, l.v)
		}
	}
	return nil
}

// apply puts the caps into the monitors' settings (checked there: a bad
// namespace label is an error of relabel.NewGenerator).
func (m *monitorCaps) apply(s *relabel.Settings) {
	s.EnforcedLimits = m.limits
	s.EnforcedNamespaceLabel = m.namespaceLabel
	s.IgnoreNamespaceSelectors = m.ignoreNamespaceSelectors
	s.OverrideHonorLabels, s.OverrideHonorTimestamps = m.overrideHonorLabels, m.overrideHonorTime
}
