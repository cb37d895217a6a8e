package intake

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
)

// Sink checks every request exactly as an Intake does (API key, encoding,
// size limits, timestamp window, the MetricPayload model) but retains
// nothing: each accepted payload is handed to a callback and then dropped.
// It is for runs too long or too large for Intake's store, such as a
// benchmark sending a million series every 15 seconds, where the caller
// keeps only what it needs (for example sums per series).
//
// Stats counts as for an Intake, except that DuplicatePoints, EvictedSeries
// and Metrics stay zero (they need the store). Faults are not injected.
type Sink struct {
	in       *Intake
	onAccept func(received time.Time, p *datadogV2.MetricPayload)
}

// NewSink checks cfg (as New does; MaxStoredSeries is ignored) and returns a
// Sink that calls onAccept, from the request's goroutine, with every accepted
// payload and the time it was received. onAccept may run concurrently for
// concurrent requests and must not keep p's slices beyond the call unless it
// copies them; the intake answers 202 only after onAccept returns.
func NewSink(cfg Config, onAccept func(received time.Time, p *datadogV2.MetricPayload)) (*Sink, error) {
	if onAccept == nil {
		return nil, fmt.Errorf("intake sink: onAccept is nil")
	}
	cfg.MaxStoredSeries = 0
	in, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return &Sink{in: in, onAccept: onAccept}, nil
}

// Stats returns a copy of the counters.
func (s *Sink) Stats() Stats { return s.in.Stats() }

// Close refuses further requests with 503 and waits for requests in progress.
func (s *Sink) Close() { s.in.Close() }

// ServeHTTP serves POST /api/v2/series and GET /api/v1/validate.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	in := s.in
	if r.URL.Path != SeriesPath {
		in.ServeHTTP(w, r) // validate, 404 and the closed answer need nothing stored
		return
	}
	if !in.enter() {
		in.refuse(w, r, &rejection{http.StatusServiceUnavailable, ReasonClosed, "intake is shut down"})
		return
	}
	defer in.inflight.Done()
	rej := s.checkSeries(r)
	if rej != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, in.cfg.MaxCompressedBytes))
		in.refuse(w, r, rej)
		return
	}
	writeJSON(w, http.StatusAccepted, errorBody{Errors: []string{}})
}

// checkSeries runs Intake's checks in the same order; an accepted payload
// is counted and handed to onAccept instead of being stored.
func (s *Sink) checkSeries(r *http.Request) *rejection {
	in := s.in
	if r.Method != http.MethodPost {
		return &rejection{http.StatusMethodNotAllowed, ReasonMethod, "method " + r.Method + " not allowed: use POST"}
	}
	if rej := in.checkKey(r); rej != nil {
		return rej
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &rejection{http.StatusBadRequest, ReasonContentType,
			fmt.Sprintf("Content-Type %q is not supported: send application/json", r.Header.Get("Content-Type"))}
	}
	rcv, rej := in.readBody(r)
	if rej != nil {
		return rej
	}
	now := in.now()
	payload, rej := in.decode(rcv.body, now)
	if rej != nil {
		return rej
	}
	s.count(rcv, payload)
	s.onAccept(now, payload)
	return nil
}

// count adds an accepted payload to the counters.
func (s *Sink) count(rcv *received, p *datadogV2.MetricPayload) {
	in := s.in
	in.mu.Lock()
	defer in.mu.Unlock()
	st := &in.stats
	st.Accepted++
	st.CompressedBytes += rcv.compressed
	st.UncompressedBytes += rcv.uncompressed
	st.Encodings[rcv.encoding]++
	for i := range p.Series {
		st.Series++
		st.Points += int64(len(p.Series[i].Points))
	}
	in.notifyLocked()
}
