package fakeintake

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadog"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV1"
)

// MetadataPathPrefix is where metric metadata is edited: PUT
// /api/v1/metrics/{metric_name}
// (https://docs.datadoghq.com/api/latest/metrics/#edit-metric-metadata).
const MetadataPathPrefix = "/api/v1/metrics/"

// AppKeyHeader carries the application key, which metadata edits need
// besides the API key.
const AppKeyHeader = "DD-APPLICATION-KEY"

// MetadataTypes are Datadog's metric types a metadata edit may set.
var MetadataTypes = []string{"gauge", "rate", "count", "distribution"}

// Units are Datadog's metric units (https://docs.datadoghq.com/metrics/units/)
// of the kinds a Prometheus exporter measures: bytes, time, fractions,
// network, system, disk and general counts.
var Units = strings.Fields(`
	bit byte kibibyte mebibyte gibibyte tebibyte pebibyte exbibyte
	nanosecond microsecond millisecond second minute hour day week
	percent_nano percent apdex fraction
	connection request packet segment response message payload timeout datagram route session hop
	process thread host node fault service instance cpu
	file inode sector block
	buffer error read write occurrence event time unit operation item task worker resource
	email sample stage monitor location check attempt device update method job container execution`)

var unitSet = func() map[string]bool {
	m := map[string]bool{}
	for _, u := range Units {
		m[u] = true
	}
	return m
}()

// MetadataUpdate is one accepted metadata edit.
type MetadataUpdate struct {
	Metric   string
	Metadata datadogV1.MetricMetadata
}

// serveMetadata edits a metric's metadata as Datadog does: both keys, a JSON
// MetricMetadata, a known type and units; 404 for a metric the intake has
// accepted no series of (Datadog knows no metadata of a metric it never
// received). It answers 200 with the metadata.
func (in *Intake) serveMetadata(w http.ResponseWriter, r *http.Request) {
	md, rej := in.checkMetadata(r)
	if rej != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, in.cfg.MaxCompressedBytes))
		in.refuse(w, r, rej)
		return
	}
	b, err := md.Metadata.MarshalJSON()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (in *Intake) checkMetadata(r *http.Request) (*MetadataUpdate, *rejection) {
	name := strings.TrimPrefix(r.URL.Path, MetadataPathPrefix)
	if r.Method != http.MethodPut {
		w := "method " + r.Method + " not allowed: use PUT to edit metadata"
		return nil, &rejection{http.StatusMethodNotAllowed, ReasonMethod, w}
	}
	if rej := in.checkKey(r); rej != nil {
		return nil, rej
	}
	switch key := r.Header.Get(AppKeyHeader); {
	case key == "":
		return nil, &rejection{http.StatusForbidden, ReasonMissingAppKey, "Forbidden"}
	case !in.appKeys[key]:
		return nil, &rejection{http.StatusForbidden, ReasonInvalidAppKey, "Forbidden"}
	}
	if rej := checkJSONType(r); rej != nil {
		return nil, rej
	}
	if msg := nameProblem(name); msg != "" {
		return nil, &rejection{http.StatusBadRequest, ReasonInvalid, "metric name " + msg}
	}
	rcv, rej := in.readBody(r)
	if rej != nil {
		return nil, rej
	}
	var md datadogV1.MetricMetadata
	if err := datadog.Unmarshal(rcv.body, &md); err != nil || md.UnparsedObject != nil {
		return nil, &rejection{http.StatusBadRequest, ReasonUndecodable, fmt.Sprintf("body is not a MetricMetadata: %v", err)}
	}
	v := validator{in: in, now: in.now()}
	v.unknown("metadata", md.AdditionalProperties)
	if t := md.GetType(); md.Type != nil && !slices.Contains(MetadataTypes, t) {
		v.add(ReasonInvalid, "type %q is not one of %s", t, strings.Join(MetadataTypes, ", "))
	}
	for _, u := range []struct {
		field string
		value *string
	}{{"unit", md.Unit}, {"per_unit", md.PerUnit}} {
		if u.value != nil && !unitSet[*u.value] {
			v.add(ReasonInvalid, "%s %q is not a Datadog unit", u.field, *u.value)
		}
	}
	if md.StatsdInterval != nil && *md.StatsdInterval <= 0 {
		v.add(ReasonInvalid, "statsd_interval %d is not positive", *md.StatsdInterval)
	}
	if rej := v.rejection(); rej != nil {
		return nil, rej
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, known := in.store.totals[name]; !known {
		return nil, &rejection{http.StatusNotFound, ReasonUnknownMetric, fmt.Sprintf("metric %q not found", name)}
	}
	up := MetadataUpdate{Metric: name, Metadata: md}
	in.stats.MetadataUpdates++
	in.metadata = append(in.metadata, up)
	in.notifyLocked()
	return &up, nil
}

// Metadata returns the accepted metadata edits of metric (all when ""),
// oldest first.
func (in *Intake) Metadata(metric string) []MetadataUpdate {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []MetadataUpdate
	for _, m := range in.metadata {
		if metric == "" || m.Metric == metric {
			out = append(out, m)
		}
	}
	return out
}
