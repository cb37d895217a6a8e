package scrapeloop

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// apiTarget is an active target of /api/v1/targets: the fields of
// Prometheus' web/api/v1 Target, then ours.
type apiTarget struct {
	DiscoveredLabels   map[string]string `json:"discoveredLabels"`
	Labels             map[string]string `json:"labels"`
	ScrapePool         string            `json:"scrapePool"`
	ScrapeURL          string            `json:"scrapeUrl"`
	GlobalURL          string            `json:"globalUrl"`
	LastError          string            `json:"lastError"`
	LastScrape         time.Time         `json:"lastScrape"`
	LastScrapeDuration float64           `json:"lastScrapeDuration"`
	Health             string            `json:"health"`
	ScrapeInterval     string            `json:"scrapeInterval"`
	ScrapeTimeout      string            `json:"scrapeTimeout"`

	// Not in Prometheus' API.
	Source        string `json:"source"`
	Samples       int    `json:"lastSamples"`
	Series        int    `json:"series"`
	SeriesRefused int    `json:"lastSeriesRefused"`
	// RefusedReason says which series budget refused them.
	RefusedReason string `json:"lastSeriesRefusedReason,omitempty"`
}

// apiDropped is a dropped target of /api/v1/targets: the fields of
// Prometheus' DroppedTarget, then why it is dropped (Prometheus has no such
// field: all its dropped targets are dropped by relabeling).
type apiDropped struct {
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	ScrapePool       string            `json:"scrapePool"`

	Source     string            `json:"source"`
	ScrapeURL  string            `json:"scrapeUrl,omitempty"`
	DropReason target.DropReason `json:"dropReason"`
	DropDetail string            `json:"dropDetail,omitempty"`
}

type apiTargets struct {
	ActiveTargets       []apiTarget    `json:"activeTargets"`
	DroppedTargets      []apiDropped   `json:"droppedTargets"`
	DroppedTargetCounts map[string]int `json:"droppedTargetCounts"`
	// RejectedMonitors are monitors that yield no target at all (not in
	// Prometheus' API: Prometheus never sees a monitor the Operator rejects).
	RejectedMonitors []Problem `json:"rejectedMonitors"`
}

// APITargetsHandler serves /api/v1/targets as Prometheus' HTTP API does
// (https://prometheus.io/docs/prometheus/latest/querying/api/#targets):
// ?state=active|dropped|any (default any) and ?scrapePool= filter as
// there; droppedTargetCounts counts every pool's dropped targets, including
// those past Config.KeepDroppedTargets. globalUrl is the scrape URL: targets
// are addresses of pods and of the node, reachable as they are. problems, if
// not nil, lists what discovery rejected (data.rejectedMonitors).
func (m *Manager) APITargetsHandler(problems func() []Problem) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		pool := q.Get("scrapePool")
		state := strings.ToLower(q.Get("state"))
		showActive := state == "" || state == "any" || state == "active"
		showDropped := state == "" || state == "any" || state == "dropped"
		res := apiTargets{ActiveTargets: []apiTarget{}, DroppedTargets: []apiDropped{}, RejectedMonitors: []Problem{}}
		if showActive {
			ts := m.Targets()
			// By pool, as Prometheus lists them; by URL within a pool.
			slices.SortStableFunc(ts, func(a, b Status) int { return strings.Compare(a.Pool, b.Pool) })
			for _, s := range ts {
				if pool != "" && s.Pool != pool {
					continue
				}
				res.ActiveTargets = append(res.ActiveTargets, apiTarget{
					DiscoveredLabels:   labelMap(s.Discovered),
					Labels:             nonNil(s.Labels),
					ScrapePool:         s.Pool,
					ScrapeURL:          s.URL,
					GlobalURL:          s.URL,
					LastError:          s.LastError,
					LastScrape:         s.LastScrape,
					LastScrapeDuration: s.LastDuration.Seconds(),
					Health:             s.Health,
					ScrapeInterval:     model.Duration(s.Interval).String(),
					ScrapeTimeout:      model.Duration(s.Timeout).String(),
					Source:             s.Source,
					Samples:            s.Samples,
					Series:             s.Series,
					SeriesRefused:      s.Refused,
					RefusedReason:      s.RefusedReason,
				})
			}
		}
		if showDropped {
			ds, counts := m.Dropped()
			res.DroppedTargetCounts = counts
			for _, d := range ds {
				if pool != "" && d.Pool != pool {
					continue
				}
				res.DroppedTargets = append(res.DroppedTargets, apiDropped{
					DiscoveredLabels: labelMap(d.Discovered),
					ScrapePool:       d.Pool,
					Source:           d.Source,
					ScrapeURL:        d.URL,
					DropReason:       d.Reason,
					DropDetail:       d.Detail,
				})
			}
		}
		if problems != nil {
			res.RejectedMonitors = append(res.RejectedMonitors, problems()...)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Status string     `json:"status"`
			Data   apiTargets `json:"data"`
		}{"success", res})
	})
}

func labelMap(ls labels.Labels) map[string]string {
	return nonNil(ls.Map())
}

// nonNil makes an empty label set encode as {}, as Prometheus' does.
func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
