package scrapeloop

import (
	"bytes"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Problem is a discovery object that yields no target (a rejected monitor),
// listed on the targets page and in /api/v1/targets beside the targets.
type Problem struct {
	Object string `json:"object"` // e.g. "ServiceMonitor app/web"
	Reason string `json:"reason"`
}

// PageInfo is what the targets page says of the agent.
type PageInfo struct {
	Node    string
	Version string
	Started time.Time // for the uptime
	// APIPath is where the JSON of the page is served; empty leaves the
	// link out.
	APIPath string
	// Problems, if not nil, lists what discovery rejected.
	Problems func() []Problem
}

// TargetsHandler serves the targets page: the node's targets grouped by
// scrape pool, ?health=up|down narrowing them (all by default), the dropped
// targets with their reasons and the rejected monitors. The page is one
// self-contained HTML document: no scripts, styles or images from elsewhere.
func (m *Manager) TargetsHandler(info PageInfo) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		filter := r.URL.Query().Get("health")
		if filter != "up" && filter != "down" {
			filter = ""
		}
		now := m.cfg.Now()
		p := page{
			Info:   info,
			Uptime: "unknown",
			Filter: filter,
			Health: map[string]int{},
		}
		if !info.Started.IsZero() {
			p.Uptime = now.Sub(info.Started).Truncate(time.Second).String()
		}
		if info.Problems != nil {
			p.Rejected = info.Problems()
		}
		byPool := map[string]*poolView{}
		for _, s := range m.Targets() {
			p.Total++
			p.Health[s.Health]++
			v := byPool[s.Pool]
			if v == nil {
				v = &poolView{Name: s.Pool}
				byPool[s.Pool] = v
			}
			v.Total++
			if s.Health == "up" {
				v.Up++
			}
			if filter == "" || s.Health == filter {
				v.Targets = append(v.Targets, newTargetRow(s, now))
			}
		}
		for _, name := range slices.Sorted(maps.Keys(byPool)) {
			if v := byPool[name]; len(v.Targets) > 0 {
				p.Pools = append(p.Pools, v)
			}
		}
		ds, counts := m.Dropped()
		for _, d := range ds {
			p.Dropped = append(p.Dropped, droppedRow{DroppedTarget: d, LabelText: labelText(d.Discovered)})
		}
		for _, n := range counts {
			p.DroppedTotal += n
		}
		var b bytes.Buffer
		if err := targetsPage.Execute(&b, p); err != nil {
			m.cfg.Logger.Error("targets page", "err", err)
			http.Error(w, "targets page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(b.Bytes())
	})
}

type page struct {
	Info         PageInfo
	Uptime       string
	Filter       string
	Total        int
	Health       map[string]int
	Pools        []*poolView
	Dropped      []droppedRow
	DroppedTotal int
	Rejected     []Problem
}

type poolView struct {
	Name      string
	Up, Total int
	Targets   []targetRow
}

type targetRow struct {
	Status
	LabelText string
	Ago       string
	Duration  string
}

type droppedRow struct {
	DroppedTarget
	LabelText string
}

func newTargetRow(s Status, now time.Time) targetRow {
	r := targetRow{Status: s, LabelText: labelText(labels.FromMap(s.Labels)), Ago: "never"}
	if !s.LastScrape.IsZero() {
		r.Ago = now.Sub(s.LastScrape).Truncate(time.Millisecond).String() + " ago"
		r.Duration = s.LastDuration.Truncate(time.Microsecond).String()
	}
	return r
}

// labelText prints ls as name="value", sorted by name.
func labelText(ls labels.Labels) string {
	var b strings.Builder
	ls.Range(func(l labels.Label) {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l.Name + `="` + l.Value + `"`)
	})
	return b.String()
}

var targetsPage = template.Must(template.New("targets").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nodescraper targets{{with .Info.Node}} on {{.}}{{end}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#1f2328}table{border-collapse:collapse;width:100%;margin-bottom:1em}
th,td{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top;font-size:14px}th{background:#f6f8fa}
.up{color:#1a7f37;font-weight:bold}.down{color:#cf222e;font-weight:bold}.unknown{color:#6e7781}
.filter a{margin-right:.8em}.filter a.on{font-weight:bold;text-decoration:none;color:inherit}
code{font-size:12px;word-break:break-all}summary{cursor:pointer;font-size:1.2em;font-weight:bold;margin:.5em 0}
.meta{color:#57606a}
</style></head><body>
<h1>Targets</h1>
<p class="meta" id="agent">Node <strong id="node">{{or .Info.Node "unknown"}}</strong> &middot; nodescraper <span id="version">{{or .Info.Version "unknown"}}</span> &middot; up <span id="uptime">{{.Uptime}}</span>{{with .Info.APIPath}} &middot; <a href="{{.}}">JSON (Prometheus API)</a>{{end}}</p>
{{if .Rejected}}<section id="rejected"><h2 class="down">Rejected monitors ({{len .Rejected}})</h2>
<p>These monitors yield no target until the problem is fixed.</p>
<table><tr><th>Object</th><th>Reason</th></tr>
{{range .Rejected}}<tr class="rejected"><td>{{.Object}}</td><td class="down">{{.Reason}}</td></tr>
{{end}}</table></section>{{end}}
<p class="filter" id="filter">Show:
<a href="?"{{if eq .Filter ""}} class="on"{{end}}>all ({{.Total}})</a>
<a href="?health=up"{{if eq .Filter "up"}} class="on"{{end}}>up ({{index .Health "up"}})</a>
<a href="?health=down"{{if eq .Filter "down"}} class="on"{{end}}>down ({{index .Health "down"}})</a>
{{with index .Health "unknown"}}<span class="unknown">{{.}} not scraped yet</span>{{end}}</p>
{{range .Pools}}<section class="pool" data-pool="{{.Name}}"><h2>{{.Name}} <small>({{.Up}}/{{.Total}} up)</small></h2>
<table><tr><th>Endpoint</th><th>State</th><th>Labels</th><th>Last scrape</th><th>Duration</th><th>Samples</th><th>Series</th><th>Error</th></tr>
{{range .Targets}}<tr class="target" data-health="{{.Health}}"><td><a href="{{.URL}}">{{.URL}}</a>{{if ne .Source .Pool}}<br><small>{{.Source}}</small>{{end}}</td>
<td class="{{.Health}}">{{.Health}}</td><td><code>{{.LabelText}}</code></td><td>{{.Ago}}</td><td>{{.Duration}}</td>
<td>{{.Samples}}</td><td>{{.Series}}</td><td>{{.LastError}}{{with .RefusedReason}}<br><small class="refused">{{.}}</small>{{end}}</td></tr>
{{end}}</table></section>
{{else}}<p id="no-targets">No {{with .Filter}}{{.}} {{end}}targets.</p>
{{end}}
<details id="dropped"><summary>Dropped targets ({{.DroppedTotal}})</summary>
{{if lt (len .Dropped) .DroppedTotal}}<p>Showing {{len .Dropped}} of {{.DroppedTotal}}: each pool keeps a bounded number; all are counted.</p>{{end}}
{{if .Dropped}}<table><tr><th>Pool</th><th>Reason</th><th>Detail</th><th>Discovered labels</th></tr>
{{range .Dropped}}<tr class="dropped" data-reason="{{.Reason}}"><td>{{.Pool}}</td><td>{{.Reason}}</td><td>{{.Detail}}{{with .URL}}<br><small>{{.}}</small>{{end}}</td><td><code>{{.LabelText}}</code></td></tr>
{{end}}</table>{{else}}<p>None.</p>{{end}}
</details>
</body></html>
`))
