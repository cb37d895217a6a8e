package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// runInfo describes the whole invocation, for the report's header.
type runInfo struct {
	Started  time.Time `json:"started"`
	Command  string    `json:"command"`
	Interval string    `json:"interval"`
	// IntakeLatency is how long the intake held each answer.
	IntakeLatency string      `json:"intake_latency,omitempty"`
	Warmup        int         `json:"warmup_intervals"`
	Measure       int         `json:"measured_intervals"`
	CPUs          int         `json:"cpus"`
	Agents        []agentSpec `json:"agents"`
	Results       []result    `json:"results"`
}

func mib(b int64) string { return fmt.Sprintf("%.0f", float64(b)/(1<<20)) }

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// writeMarkdown writes the table (one row per scenario and agent) and the
// details a reader needs to trust it.
func writeMarkdown(w io.Writer, ri runInfo) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# nodebench %s\n\n", ri.Started.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "`%s`\n\n", ri.Command)
	fmt.Fprintf(&b, "Scrape interval %s, %d warm-up + %d measured intervals, %d CPUs. ", ri.Interval, ri.Warmup, ri.Measure, ri.CPUs)
	if ri.IntakeLatency != "" && ri.IntakeLatency != "0s" {
		fmt.Fprintf(&b, "The intake answers every POST %s after it arrives. ", ri.IntakeLatency)
	}
	b.WriteString("CPU and RSS are the agent's (/proc/<pid>/stat utime+stime, VmRSS every second); samples are those the exporters served in the measured window.\n\n")
	for _, a := range ri.Agents {
		v := ""
		for _, r := range ri.Results {
			if r.Agent == a.Name {
				v = r.AgentVersion
				break
			}
		}
		fmt.Fprintf(&b, "- agent `%s`: `%s` (version %s)\n", a.Name, a.Path, v)
	}
	b.WriteString("\n| scenario | agent | targets | series | samples | agent CPU s | samples/s/core | CPU s per 1M samples | RSS median / max MiB | RSS B/series | bytes/sample (zstd) | latency p50 / p99 s | drops (agent + intake) | sums vs true increase |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, r := range ri.Results {
		sums := r.Check.String()
		if r.Error != "" {
			sums = "**error**: " + r.Error
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %.1f | %s | %.2f | %s / %s | %s | %.2f | %.1f / %.1f | %s | %s |\n",
			r.Scenario, r.Agent, r.Targets, num(float64(r.Series)), num(float64(r.Samples)), r.CPU, num(r.SamplesPerCoreS),
			r.CPUPerMSamples, mib(r.RSSMedian), mib(r.RSSMax), num(r.RSSPerSeries), r.BytesPerSample,
			r.LatencyP50, r.LatencyP99, num(r.AgentDrops+float64(r.IntakeRejected)), strings.ReplaceAll(sums, "|", "/"))
	}
	b.WriteString("\nScenarios:\n\n")
	seen := map[string]bool{}
	for _, r := range ri.Results {
		if !seen[r.Scenario] {
			seen[r.Scenario] = true
			fmt.Fprintf(&b, "- `%s`: %s\n", r.Scenario, r.Desc)
		}
	}
	b.WriteString("\nDetails per run (window, the agent's mean CPU use, scrapes, points received, the harness's own CPU in the window, exit time after SIGTERM, nonzero drop counters, intake refusals, first mismatches):\n\n")
	for _, r := range ri.Results {
		fmt.Fprintf(&b, "- %s/%s: window %.1f s, agent %.1f%% of a core, %d scrapes, %d points, harness CPU %.1f s, exit %.1f s, %d payloads (%d checked against the model)",
			r.Scenario, r.Agent, r.Window, 100*r.CPU/max(r.Window, 1e-9), r.Scrapes, r.Points, r.HarnessCPU, r.ExitSeconds, r.IntakePayloads, r.ModelChecked)
		for _, k := range slices.Sorted(maps.Keys(r.SeriesVersions)) {
			fmt.Fprintf(&b, ", %d %s payloads", r.SeriesVersions[k], k)
		}
		for _, k := range slices.Sorted(maps.Keys(r.AgentDropSeries)) {
			fmt.Fprintf(&b, "; `%s` %v", k, r.AgentDropSeries[k])
		}
		if r.IntakeRejected > 0 {
			fmt.Fprintf(&b, "; intake refused %d %v, last: %s", r.IntakeRejected, r.IntakeReasons, r.IntakeLastReject)
		}
		if len(r.Check.UnknownTagKeys) > 0 {
			fmt.Fprintf(&b, "; tag keys the harness does not produce: %v", r.Check.UnknownTagKeys)
		}
		for _, e := range r.Check.Examples {
			fmt.Fprintf(&b, "\n  - `%s`", e)
		}
		b.WriteString("\n")
	}
	b.WriteString("\nLatency is receive time minus the point's timestamp, which the agent truncates to whole seconds: it reads up to 1 s high, in 0.1 s bins.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// writeReports writes prefix.md and prefix.json.
func writeReports(prefix string, ri runInfo) error {
	f, err := os.Create(prefix + ".md")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := writeMarkdown(f, ri); err != nil {
		_ = f.Close()
		return fmt.Errorf("report %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	js, err := json.MarshalIndent(ri, "", "  ")
	if err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	if err := os.WriteFile(prefix+".json", append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	return nil
}
