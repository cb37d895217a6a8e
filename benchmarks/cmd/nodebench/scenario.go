package main

import (
	"fmt"
	"slices"
	"strings"
)

// scenario is one node shape to measure.
type scenario struct {
	name    string
	desc    string
	targets int  // synthetic targets
	series  int  // samples per synthetic target (rounded to whole objects)
	churn   bool // 10% of each target's series replaced every scrape
	ksm     bool // plus one kube-state-metrics target of -ksm-bytes
	curve   bool // a point of the scaling curve
}

// scenarios are all of them, in the order "all" runs them.
var scenarios = []scenario{
	{name: "idle", desc: "1 target x 100 series", targets: 1, series: 100},
	{name: "scale-10k", desc: "100 targets x 100 series", targets: 100, series: 100, curve: true},
	{name: "scale-100k", desc: "100 targets x 1,000 series", targets: 100, series: 1000, curve: true},
	{name: "typical", desc: "typical node: 110 targets x 1,000 series", targets: 110, series: 1000},
	{name: "churn", desc: "110 targets x 1,000 series, 10% of series replaced per scrape", targets: 110, series: 1000, churn: true},
	{name: "ksm", desc: "kube-state-metrics of a large cluster (one genksm target) beside 30 targets x 1,000 series", targets: 30, series: 1000, ksm: true},
	{name: "scale-500k", desc: "100 targets x 5,000 series (the 500k point of the scaling curve)", targets: 100, series: 5000, curve: true},
	{name: "dense", desc: "dense node: 100 targets x 10,000 series (the 1M point of the scaling curve)", targets: 100, series: 10000, curve: true},
}

// selectScenarios resolves a comma-separated list of names, "all" and
// "scaling" (the curve's points).
func selectScenarios(list string) ([]scenario, error) {
	var out []scenario
	add := func(s scenario) {
		if !slices.ContainsFunc(out, func(o scenario) bool { return o.name == s.name }) {
			out = append(out, s)
		}
	}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, s := range scenarios {
			if name == "all" || name == s.name || (name == "scaling" && s.curve) {
				add(s)
				found = true
			}
		}
		if !found {
			names := make([]string, 0, len(scenarios))
			for _, s := range scenarios {
				names = append(names, s.name)
			}
			return nil, fmt.Errorf("unknown scenario %q: use all, scaling or some of %s", name, strings.Join(names, ", "))
		}
	}
	return out, nil
}
