package fakeintake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
)

// SinkConfig configures a Sink.
type SinkConfig struct {
	// Config holds the checks, as for an Intake; MaxStoredSeries is ignored.
	Config
	// ModelEvery sends accepted-so-far payload 0, ModelEvery, 2*ModelEvery...
	// through Intake's full check against datadog-api-client-go's model. The
	// others are decoded into plain structs and get the same checks except
	// the detection of unknown fields, at a fraction of the cost: the model
	// spends about 75 µs per series, too much for a million series every 15
	// seconds on a small machine. 0 or 1 checks every payload with the model.
	ModelEvery int
	// Unmarshal decodes the payloads the model does not check; nil means
	// encoding/json.Unmarshal.
	Unmarshal func(data []byte, v any) error
	// OnAccept gets every accepted payload with the time it was received,
	// from the request's goroutine (concurrently for concurrent requests),
	// before the intake answers 202. series is not used by the Sink after
	// the call.
	OnAccept func(received time.Time, series []SinkSeries)
}

// SinkSeries is one accepted series.
type SinkSeries struct {
	Metric   string
	Type     datadogV2.MetricIntakeType
	Interval int64 // seconds; 0 when none
	Tags     []string
	Host     string // name of the first resource of type host, or ""
	Points   []SinkPoint
}

// SinkPoint is one point of a SinkSeries.
type SinkPoint struct {
	Timestamp int64 // seconds
	Value     float64
}

// Sink checks requests as an Intake does (API key, encoding, size limits,
// timestamp window, the MetricPayload model, see SinkConfig.ModelEvery) but
// retains nothing: each accepted payload goes to OnAccept and is dropped. It
// is for runs too long or too large for Intake's store, such as a benchmark
// sending a million series every 15 seconds, where the caller keeps only
// what it needs (sums per series, say).
//
// Stats counts as for an Intake, except that DuplicatePoints, EvictedSeries
// and Metrics stay zero (they need the store). Faults are not injected.
type Sink struct {
	in        *Intake
	cfg       SinkConfig
	payloads  atomic.Int64 // bodies that reached decoding
	modelDone atomic.Int64 // accepted payloads the model checked
}

// NewSink checks cfg (as New does) and returns a Sink.
func NewSink(cfg SinkConfig) (*Sink, error) {
	if cfg.OnAccept == nil {
		return nil, errors.New("intake sink config: OnAccept is nil")
	}
	if cfg.ModelEvery < 0 {
		return nil, errors.New("intake sink config: ModelEvery must not be negative")
	}
	cfg.ModelEvery = max(cfg.ModelEvery, 1)
	if cfg.Unmarshal == nil {
		cfg.Unmarshal = json.Unmarshal
	}
	cfg.MaxStoredSeries = 0
	in, err := New(cfg.Config)
	if err != nil {
		return nil, err
	}
	return &Sink{in: in, cfg: cfg}, nil
}

// Stats returns a copy of the counters.
func (s *Sink) Stats() Stats { return s.in.Stats() }

// ModelChecked is how many accepted payloads the full model check passed.
func (s *Sink) ModelChecked() int64 { return s.modelDone.Load() }

// Close refuses further requests with 503 and waits for requests in progress.
func (s *Sink) Close() { s.in.Close() }

// ServeHTTP serves POST /api/v2/series, POST /api/intake/metrics/v3/series
// (as Config.SeriesAPI says) and GET /api/v1/validate.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	in := s.in
	version := SeriesV2
	switch r.URL.Path {
	case SeriesPath:
	case SeriesV3Path:
		version = SeriesV3
	default:
		in.ServeHTTP(w, r) // validate, 404 and the closed answer store nothing
		return
	}
	if !in.enter() {
		in.refuse(w, r, &rejection{http.StatusServiceUnavailable, ReasonClosed, "intake is shut down"})
		return
	}
	defer in.inflight.Done()
	if in.wrongSeriesAPI(w, r, version) {
		return
	}
	if rej := s.checkSeries(r, version); rej != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, in.cfg.MaxCompressedBytes))
		in.refuse(w, r, rej)
		return
	}
	writeJSON(w, http.StatusAccepted, errorBody{Errors: []string{}})
}

// checkSeries runs Intake's checks in the same order; an accepted payload
// is counted and handed to OnAccept instead of being stored.
func (s *Sink) checkSeries(r *http.Request, version string) *rejection {
	in := s.in
	checkHeaders := in.checkPost
	if version == SeriesV3 {
		checkHeaders = in.checkPostV3
	}
	if rej := checkHeaders(r); rej != nil {
		return rej
	}
	rcv, rej := in.readBody(r)
	if rej != nil {
		return rej
	}
	rcv.version = version
	now := in.now()
	var series []SinkSeries
	if version == SeriesV3 {
		// Always the full check: the v3 decoder is the generated types'.
		p, rej := in.decodeV3(rcv.body, now)
		if rej != nil {
			return rej
		}
		series = fromModel(p)
		s.modelDone.Add(1)
	} else if model := (s.payloads.Add(1)-1)%int64(s.cfg.ModelEvery) == 0; model {
		p, rej := in.decode(rcv.body, now)
		if rej != nil {
			return rej
		}
		series = fromModel(p)
		s.modelDone.Add(1)
	} else if series, rej = s.decodePlain(rcv.body, now); rej != nil {
		return rej
	}
	s.count(rcv, series)
	s.cfg.OnAccept(now, series)
	return nil
}

func fromModel(p *datadogV2.MetricPayload) []SinkSeries {
	out := make([]SinkSeries, len(p.Series))
	for i := range p.Series {
		ms := &p.Series[i]
		s := SinkSeries{Metric: ms.Metric, Type: ms.GetType(), Interval: ms.GetInterval(), Tags: ms.Tags,
			Points: make([]SinkPoint, len(ms.Points))}
		for _, r := range ms.Resources {
			if r.GetType() == "host" {
				s.Host = r.GetName()
				break
			}
		}
		for j, pt := range ms.Points {
			s.Points[j] = SinkPoint{Timestamp: pt.GetTimestamp(), Value: pt.GetValue()}
		}
		out[i] = s
	}
	return out
}

// plainPayload is MetricPayload in plain Go types.
type plainPayload struct {
	Series *[]struct {
		Metric    *string  `json:"metric"`
		Type      *int32   `json:"type"`
		Interval  *int64   `json:"interval"`
		Tags      []string `json:"tags"` // null decodes as "": refused as empty
		Resources []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"resources"`
		Points []struct {
			Timestamp *int64   `json:"timestamp"`
			Value     *float64 `json:"value"`
		} `json:"points"`
	} `json:"series"`
}

// decodePlain decodes body without the model and applies the validator's
// value rules (the same functions as the model's path).
func (s *Sink) decodePlain(body []byte, now time.Time) ([]SinkSeries, *rejection) {
	var p plainPayload
	if err := s.cfg.Unmarshal(body, &p); err != nil {
		return nil, &rejection{http.StatusBadRequest, ReasonUndecodable, fmt.Sprintf("body is not a MetricPayload: %v", err)}
	}
	if p.Series == nil {
		return nil, &rejection{http.StatusBadRequest, ReasonUndecodable, "body is not a MetricPayload: series is missing or null"}
	}
	v := validator{in: s.in, now: now}
	out := make([]SinkSeries, len(*p.Series))
	for i, ps := range *p.Series {
		if ps.Metric == nil {
			v.add(ReasonUndecodable, "series[%d]: no metric", i)
			continue
		}
		where := seriesWhere{i, *ps.Metric}
		ss := SinkSeries{Metric: *ps.Metric, Tags: ps.Tags, Points: make([]SinkPoint, 0, len(ps.Points))}
		if ps.Type != nil {
			ss.Type = datadogV2.MetricIntakeType(*ps.Type)
		}
		if ps.Interval != nil {
			ss.Interval = *ps.Interval
		}
		if !ss.Type.IsValid() {
			// The model's enum refuses it when it decodes.
			v.add(ReasonUndecodable, "%s: type %d is not one of 0 (unspecified), 1 (count), 2 (rate), 3 (gauge)", where, ss.Type)
		}
		v.seriesValues(where, ss.Metric, ss.Type, ps.Interval, len(ps.Points), ps.Tags)
		for j, r := range ps.Resources {
			v.resource(where, j, r.Name, r.Type)
			if r.Type == "host" && ss.Host == "" {
				ss.Host = r.Name
			}
		}
		for j, pt := range ps.Points {
			if v.point(where, j, pt.Timestamp, pt.Value) {
				ss.Points = append(ss.Points, SinkPoint{Timestamp: *pt.Timestamp, Value: *pt.Value})
			}
		}
		out[i] = ss
	}
	if rej := v.rejection(); rej != nil {
		return nil, rej
	}
	return out, nil
}

// count adds an accepted payload to the counters.
func (s *Sink) count(rcv *received, series []SinkSeries) {
	in := s.in
	in.mu.Lock()
	defer in.mu.Unlock()
	in.countLocked(rcv)
	for i := range series {
		in.stats.Series++
		in.stats.Points += int64(len(series[i].Points))
	}
	in.notifyLocked()
}
