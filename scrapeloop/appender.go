package scrapeloop

import (
	"time"

	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/prometheus/model/labels"
)

// Kind says how a loop treats the samples of a series.
type Kind uint8

// Kinds; 0 is kept for a series not classified yet.
const (
	// KindDrop: not sent (relabeled away, _created samples, or refused by
	// the backend).
	KindDrop Kind = iota + 1
	// KindGauge: sent as sampled.
	KindGauge
	// KindCounter: cumulative; its increases are sent.
	KindCounter
	// kindRelabeled: dropped by metric relabeling, which the loop counts
	// apart (Report.PostRelabel); treated as KindDrop.
	kindRelabeled
)

// Series describes a new series to the appender. It is valid only during
// the AddSeries call.
type Series struct {
	// Family is the metric family (from # TYPE, else the metric name), Type
	// its type and Role what the sample is within it.
	Family []byte
	Type   exposition.MetricType
	Role   exposition.Role
	// Labels are the series' final labels: the sample's, the target's and
	// metric relabeling applied, as Prometheus would store them, __name__
	// included.
	Labels labels.Labels
	// Verbatim says Labels follow from the sample's own labels (as
	// Parser.Label gives them, in input order) and the target's labels by
	// these rules alone, so an appender may encode every point straight from
	// the parser and keep nothing of the series:
	//   - the name is the sample's metric name;
	//   - the sample's k-th label is renamed "exported_<name>" when bit k of
	//     Exported is set (a clash with a target label, honor_labels off);
	//   - the target's i-th label (in Target.Labels order) is left out when
	//     bit i of Omitted is set (a clash, honor_labels on).
	Verbatim bool
	Exported uint32
	Omitted  uint64
	// Sample is the parser positioned on the series' sample, valid only
	// during the AddSeries call: its k-th label (Parser.Label) is the one
	// bit k of Exported speaks of, so an appender can make masks of its own
	// over the same positions.
	Sample *exposition.Parser
	// Help and Unit are the family's # HELP and # UNIT text, or nil.
	Help, Unit []byte
}

// Appender receives one target's points, in the manner of Prometheus'
// storage.Appender: the loop asks once per new series how to treat it and
// caches the answer; every point after that names the series by its ref.
// A loop calls its appender from its own goroutine only.
type Appender interface {
	// AddSeries classifies a new series and returns the appender's handle
	// of it, which the loop keeps with the series.
	AddSeries(s *Series) (ref uint64, k Kind)
	// Append hands over one point: the sample value of a gauge, the
	// increase of a counter. p is positioned on the sample; its labels are
	// valid only during the call. tsMs is in Unix milliseconds.
	Append(ref uint64, p *exposition.Parser, tsMs int64, v float64)
	// Forget says the series of ref went away; the ref is not used again.
	Forget(ref uint64)
	// Commit ends a scrape: the points appended since the previous Commit
	// are handed on.
	Commit()
	// Close releases the appender when its loop stops.
	Close()
}

// Report is the outcome of one scrape, what Prometheus' report series give
// (scrape/scrape.go report: up, scrape_duration_seconds,
// scrape_samples_scraped, scrape_samples_post_metric_relabeling,
// scrape_series_added). A failed scrape reports the samples it read before
// it failed.
type Report struct {
	Start    time.Time
	Duration time.Duration
	// Err is why the scrape failed; nil when it succeeded (up 1).
	Err error
	// Samples is the number of samples read; PostRelabel those of them left
	// after metric relabeling (neither dropped by it nor refused by the
	// node's series budget); SeriesAdded the series not held before this
	// scrape.
	Samples, PostRelabel, SeriesAdded int
}

// Reporter is an Appender that also takes each scrape's Report, from the
// loop's goroutine after the scrape's Commit. It is optional: a loop whose
// appender is not one reports nothing.
type Reporter interface {
	Report(r *Report)
}

// Backend makes the appender of each target; *ddclient.Client is one.
type Backend interface {
	NewAppender(t *target.Target) (Appender, error)
}
