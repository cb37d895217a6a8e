package scrapeloop

import (
	"encoding/json"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Problem is a discovery object that yields no target (a rejected monitor),
// listed on the targets page beside the targets.
type Problem struct {
	Object string `json:"object"` // e.g. "ServiceMonitor app/web"
	Reason string `json:"reason"`
}

// TargetsHandler serves the targets page: HTML for browsers, JSON for
// "?format=json" or an Accept header asking for JSON. problems, if not nil,
// lists what discovery rejected.
func (m *Manager) TargetsHandler(problems func() []Problem) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts := m.Targets()
		ps := []Problem{}
		if problems != nil {
			ps = problems()
		}
		if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(struct {
				Targets  []Status  `json:"targets"`
				Rejected []Problem `json:"rejected"`
			}{ts, ps})
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		rows := make([]targetRow, len(ts))
		for i, t := range ts {
			rows[i] = newTargetRow(t)
		}
		_ = targetsPage.Execute(w, struct {
			Targets  []targetRow
			Rejected []Problem
		}{rows, ps})
	})
}

type targetRow struct {
	Status
	LabelText string
	Ago       string
	Duration  string
}

func newTargetRow(s Status) targetRow {
	names := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, k := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + `="` + s.Labels[k] + `"`)
	}
	r := targetRow{Status: s, LabelText: b.String(), Ago: "never"}
	if !s.LastScrape.IsZero() {
		r.Ago = time.Since(s.LastScrape).Truncate(time.Millisecond).String() + " ago"
		r.Duration = s.LastDuration.Truncate(time.Microsecond).String()
	}
	return r
}

var targetsPage = template.Must(template.New("targets").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>nodescraper targets</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top;font-size:14px}
.up{color:#1a7f37;font-weight:bold}.down{color:#cf222e;font-weight:bold}.unknown{color:#777}
code{font-size:12px}
</style></head><body>
<h1>Targets ({{len .Targets}})</h1>
<p><a href="?format=json">JSON</a></p>
{{if .Rejected}}<h2>Rejected ({{len .Rejected}})</h2>
<table><tr><th>Object</th><th>Reason</th></tr>
{{range .Rejected}}<tr><td>{{.Object}}</td><td class="down">{{.Reason}}</td></tr>
{{end}}</table><h2>Scraped</h2>{{end}}
<table><tr><th>Endpoint</th><th>State</th><th>Labels</th><th>Last scrape</th><th>Duration</th><th>Samples</th><th>Series</th><th>Error</th></tr>
{{range .Targets}}<tr><td><a href="{{.URL}}">{{.URL}}</a>{{if .Source}}<br><small>{{.Source}}</small>{{end}}</td>
<td class="{{.Health}}">{{.Health}}</td><td><code>{{.LabelText}}</code></td><td>{{.Ago}}</td><td>{{.Duration}}</td>
<td>{{.Samples}}</td><td>{{.Series}}</td><td>{{.LastError}}</td></tr>
{{end}}</table></body></html>
`))
