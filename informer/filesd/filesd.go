package filesd

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/prometheus/model/labels"
	"sigs.k8s.io/yaml"
)

// Config configures targets read from a Prometheus file_sd file.
type Config struct {
	// Metrics receives the reader's own metrics; nil keeps them private.
	Metrics *metrics.Set
	// Path is a JSON or YAML file: a list of {targets: [host:port], labels: {}}.
	// __scheme__, __metrics_path__, __param_*, __scrape_interval__ and
	// __scrape_timeout__ labels are honoured as in Prometheus.
	Path string
	// Defaults apply where labels do not override them (Job defaults to "static").
	Defaults relabel.Defaults
	// Poll is how often the file is checked for changes; default 5s. Polling
	// (not inotify) also sees ConfigMap volume updates, which swap symlinks.
	Poll   time.Duration
	Logger *slog.Logger
}

type fileSDGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// Load reads and resolves the file once. As Prometheus' file_sd does,
// an entry that is not a valid target (an address that is not host:port, a
// bad __scrape_interval__) drops that target only: it comes back with Drop
// set (DroppedInvalid, the error as the detail) beside the valid ones. A file
// that cannot be read or parsed is an error.
func Load(cfg Config) ([]target.Target, error) {
	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("static targets: %w", err)
	}
	return parse(cfg, data)
}

// fileSDPathLabel is the discovered label Prometheus' file_sd gives every
// target: the file it came from.
const fileSDPathLabel = "__meta_filepath"

func parse(cfg Config, data []byte) ([]target.Target, error) {
	var groups []*fileSDGroup
	if err := yaml.UnmarshalStrict(data, &groups); err != nil {
		return nil, fmt.Errorf("static targets %s: %w", cfg.Path, err)
	}
	if cfg.Defaults.Job == "" {
		cfg.Defaults.Job = "static"
	}
	var out []target.Target
	for gi, g := range groups {
		if g == nil {
			return nil, fmt.Errorf("static targets %s: group %d is empty (null)", cfg.Path, gi)
		}
		for ti, addr := range g.Targets {
			b := labels.NewBuilder(labels.EmptyLabels())
			for k, v := range g.Labels {
				b.Set(k, v)
			}
			b.Set("__address__", addr)
			b.Set(fileSDPathLabel, cfg.Path)
			discovered := b.Labels()
			t, err := relabel.Populate(discovered, nil, cfg.Defaults)
			if err != nil {
				t.Drop = target.Drop{Reason: target.DroppedInvalid, Detail: fmt.Sprintf("group %d target %d (%q): %v", gi, ti, addr, err)}
			}
			t.HonorTimestamps = true // Prometheus' default, which a file cannot change
			t.Source = "file " + cfg.Path
			t.Pool = cfg.Defaults.Job
			t.Discovered = discovered
			out = append(out, t)
		}
	}
	return out, nil
}

// dropped returns the dropped targets of ts.
func dropped(ts []target.Target) []target.Target {
	var out []target.Target
	for _, t := range ts {
		if t.Drop.Reason != "" {
			out = append(out, t)
		}
	}
	return out
}

// MetricsHelp returns the HELP text of Run's metrics by family
// name.
func MetricsHelp() map[string]string {
	return map[string]string{
		`nodescraper_static_targets_errors_total`: "Times the static targets file could not be read or parsed (the previous targets stay).",
		`nodescraper_static_targets_invalid`:      "Entries of the static targets file last loaded that are not valid targets (dropped).",
	}
}

// Run sends the file's targets to out at start and whenever the file's
// content changes, until ctx is cancelled. A file that cannot be read or
// parsed is logged and counted; the previous targets stay in place. Invalid
// entries are sent as dropped targets (see Load) and logged once per
// version of the file. out should
// have a buffer of one: a newer target set replaces one not yet taken.
func Run(ctx context.Context, cfg Config, out chan []target.Target) {
	if cfg.Poll <= 0 {
		cfg.Poll = 5 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	staticReloadErrors := cfg.Metrics.GetOrCreateCounter(`nodescraper_static_targets_errors_total`)
	// Entries of the file last loaded that are not valid targets.
	staticInvalid := cfg.Metrics.GetOrCreateGauge(`nodescraper_static_targets_invalid`, nil)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var seen []byte // content last parsed, good or bad: each version is logged once
	first, readFailed := true, false
	t := time.NewTicker(cfg.Poll)
	defer t.Stop()
	for {
		data, err := os.ReadFile(cfg.Path)
		switch {
		case err != nil:
			if !readFailed {
				staticReloadErrors.Inc()
				cfg.Logger.Error("static targets file unreadable; keeping the previous targets", "file", cfg.Path, "err", err)
			}
			readFailed = true
		case first || !bytes.Equal(data, seen):
			first, readFailed, seen = false, false, data
			targets, err := parse(cfg, data)
			if err != nil {
				staticReloadErrors.Inc()
				cfg.Logger.Error("static targets not loaded; keeping the previous ones", "file", cfg.Path, "err", err)
				break
			}
			bad := dropped(targets)
			for _, t := range bad {
				cfg.Logger.Warn("static target not loaded", "file", cfg.Path, "reason", t.Drop.Reason, "err", t.Drop.Detail)
			}
			staticInvalid.Set(float64(len(bad)))
			cfg.Logger.Info("static targets loaded", "file", cfg.Path, "targets", len(targets)-len(bad), "invalid", len(bad))
			send(out, targets)
		default:
			readFailed = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// send replaces an untaken target set in out with ts, so that the reader
// always takes the newest.
func send(out chan []target.Target, ts []target.Target) {
	select {
	case <-out:
	default:
	}
	out <- ts
}
