package fakeintake

import (
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
)

// HangForever as a Fault's Delay never answers: the request ends only when
// the client gives up or the intake closes.
const HangForever time.Duration = math.MaxInt64

// Fault is a scripted answer to one series request (POST /api/v2/series or
// /api/intake/metrics/v3/series: one queue for both). Faults are
// used in the order injected, one per request, before any other check; once
// they are used up the intake answers normally again.
type Fault struct {
	// Status answers with this status and a Datadog-style error body instead
	// of handling the request. 0 handles the request normally after Delay.
	Status int
	// Delay holds the answer this long, or until the client gives up or the
	// intake closes, whichever comes first.
	Delay time.Duration
	// RateLimitReset, with Status 429, is sent as X-RateLimit-Reset in whole
	// seconds, rounded up (at least 1), as Datadog's rate limiter does.
	RateLimitReset time.Duration
	// Header holds extra response headers, e.g. Retry-After.
	Header http.Header
}

// InjectFaults queues faults for the next requests, after any already queued.
func (in *Intake) InjectFaults(faults ...Fault) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults = append(in.faults, faults...)
}

// FailNext answers the next n requests with status.
func (in *Intake) FailNext(n, status int) {
	for range n {
		in.InjectFaults(Fault{Status: status})
	}
}

// HangNext holds the next n requests for d (HangForever: until the client
// gives up) and then handles them normally.
func (in *Intake) HangNext(n int, d time.Duration) {
	for range n {
		in.InjectFaults(Fault{Delay: d})
	}
}

// PendingFaults is the number of queued faults not yet used.
func (in *Intake) PendingFaults() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.faults)
}

// ClearFaults drops every queued fault.
func (in *Intake) ClearFaults() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults = nil
}

func (in *Intake) nextFault() (Fault, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.faults) == 0 {
		return Fault{}, false
	}
	f := in.faults[0]
	in.faults = in.faults[1:]
	in.stats.Faults++
	in.notifyLocked() // lets a test wait until a hang has begun
	return f, true
}

// serveFault applies f and reports whether the request should now be handled
// normally.
func (in *Intake) serveFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			in.log.Info("intake fault: client gave up during hang", "path", r.URL.Path, "delay", f.Delay)
			return false
		case <-in.stop:
			return false
		}
	}
	if f.Status == 0 {
		return true
	}
	// Drain (bounded) so the client reads our answer, not a reset connection.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, in.cfg.MaxCompressedBytes))
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if f.Status == http.StatusTooManyRequests {
		reset := max(int64(math.Ceil(f.RateLimitReset.Seconds())), 1)
		h := w.Header()
		h.Set("X-RateLimit-Limit", "1")
		h.Set("X-RateLimit-Period", strconv.FormatInt(reset, 10))
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
		h.Set("X-RateLimit-Name", "intake_stand_in")
	}
	in.log.Info("intake fault: injected answer", "path", r.URL.Path, "status", f.Status)
	writeJSON(w, f.Status, errorBody{Errors: []string{http.StatusText(f.Status) + " (injected fault)"}})
	return false
}
