package scrapeloop

import (
	"encoding/json"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"
)

// TargetsHandler serves the targets page: HTML for browsers, JSON for
// "?format=json" or an Accept header asking for JSON.
func (m *Manager) TargetsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts := m.Targets()
		if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(struct {
				Targets []Status `json:"targets"`
			}{ts})
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		rows := make([]targetRow, len(ts))
		for i, t := range ts {
			rows[i] = newTargetRow(t)
		}
		_ = targetsPage.Execute(w, rows)
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
<h1>Targets ({{len .}})</h1>
<p><a href="?format=json">JSON</a></p>
<table><tr><th>Endpoint</th><th>State</th><th>Labels</th><th>Last scrape</th><th>Duration</th><th>Samples</th><th>Series</th><th>Error</th></tr>
{{range .}}<tr><td><a href="{{.URL}}">{{.URL}}</a>{{if .Source}}<br><small>{{.Source}}</small>{{end}}</td>
<td class="{{.Health}}">{{.Health}}</td><td><code>{{.LabelText}}</code></td><td>{{.Ago}}</td><td>{{.Duration}}</td>
<td>{{.Samples}}</td><td>{{.Series}}</td><td>{{.LastError}}</td></tr>
{{end}}</table></body></html>
`))
