package fakeintake

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestFaultSequence(t *testing.T) {
	s := startIntake(t, nil)
	s.InjectFaults(
		Fault{Status: http.StatusTooManyRequests, RateLimitReset: 2500 * time.Millisecond},
		Fault{Status: http.StatusInternalServerError},
		Fault{Status: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {"7"}}},
		Fault{Status: http.StatusRequestTimeout},
		Fault{Status: http.StatusBadGateway, Delay: time.Millisecond},
	)
	if got := s.PendingFaults(); got != 5 {
		t.Fatalf("PendingFaults = %d, want 5", got)
	}
	body := readTestdata(t, "docs_example.json")
	for i, want := range []struct {
		status int
		header string
		value  string
	}{
		{http.StatusTooManyRequests, "X-RateLimit-Reset", "3"},
		{http.StatusInternalServerError, "", ""},
		{http.StatusServiceUnavailable, "Retry-After", "7"},
		{http.StatusRequestTimeout, "", ""},
		{http.StatusBadGateway, "", ""},
		{http.StatusAccepted, "", ""}, // faults used up: normal again
		{http.StatusAccepted, "", ""},
	} {
		a := post(t, s, jsonHeaders(""), body)
		if a.status != want.status {
			t.Errorf("request %d: status %d, want %d (body %s)", i, a.status, want.status, a.body)
		}
		if want.header != "" && a.header.Get(want.header) != want.value {
			t.Errorf("request %d: %s = %q, want %q", i, want.header, a.header.Get(want.header), want.value)
		}
		if want.status >= 400 && len(a.errors) == 0 {
			t.Errorf("request %d: no Datadog-style errors in %s", i, a.body)
		}
	}
	st := s.Stats()
	if st.Faults != 5 || st.Accepted != 2 || st.Series != 2 || st.RejectedTotal() != 0 {
		t.Errorf("Stats = %+v, want 5 faults, 2 accepted payloads (faulted ones not stored), no rejects", st)
	}
	if got := len(s.Points("system.load.1")); got != 2 {
		t.Errorf("stored %d points, want 2", got)
	}
}

func TestFailNextBeforeKeyCheck(t *testing.T) {
	s := startIntake(t, nil)
	s.FailNext(2, http.StatusServiceUnavailable)
	h := jsonHeaders("")
	h.Set(APIKeyHeader, "wrong") // the fault stands for the server failing: it comes first
	for i := range 2 {
		if a := post(t, s, h, nil); a.status != http.StatusServiceUnavailable {
			t.Errorf("request %d: status %d, want 503", i, a.status)
		}
	}
	if a := post(t, s, h, nil); a.status != http.StatusForbidden {
		t.Errorf("after the faults: status %d, want 403", a.status)
	}
	s.FailNext(3, http.StatusInternalServerError)
	s.ClearFaults()
	if got := s.PendingFaults(); got != 0 {
		t.Errorf("PendingFaults after ClearFaults = %d", got)
	}
}

func TestHangRespectsClientTimeout(t *testing.T) {
	s := startIntake(t, nil)
	s.HangNext(1, HangForever)
	body := readTestdata(t, "docs_example.json")
	c := newClient(t, 200*time.Millisecond)
	_, err := send(t, c, http.MethodPost, s.URL+SeriesPath, jsonHeaders(""), bytes.NewReader(body))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("hung request: error %v, want a client timeout", err)
	}
	// The hang ends when the client goes away; nothing was stored.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitFor(ctx, func(in *Intake) bool { return in.Stats().Faults == 1 }); err != nil {
		t.Fatal(err)
	}
	if a, err := send(t, c, http.MethodPost, s.URL+SeriesPath, jsonHeaders(""), bytes.NewReader(body)); err != nil || a.status != http.StatusAccepted {
		t.Fatalf("after the hang: %v %+v, want 202", err, a)
	}
	if got := len(s.Points("system.load.1")); got != 1 {
		t.Errorf("stored %d points, want only the second request's 1", got)
	}
}

func TestDelayThenNormal(t *testing.T) {
	s := startIntake(t, nil)
	s.HangNext(1, 20*time.Millisecond)
	if a := post(t, s, jsonHeaders(""), readTestdata(t, "docs_example.json")); a.status != http.StatusAccepted {
		t.Fatalf("delayed request: %d %s, want 202", a.status, a.body)
	}
	if st := s.Stats(); st.Faults != 1 || st.Accepted != 1 {
		t.Errorf("Stats = %+v, want 1 fault and 1 accepted", st)
	}
}

func TestCloseEndsHang(t *testing.T) {
	s := startIntake(t, nil)
	s.HangNext(1, HangForever)
	errc := make(chan error, 1)
	c := newClient(t, 0)
	go func() {
		_, err := send(t, c, http.MethodPost, s.URL+SeriesPath, jsonHeaders(""), bytes.NewReader(readTestdata(t, "docs_example.json")))
		errc <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitFor(ctx, func(in *Intake) bool { return in.Stats().Faults == 1 }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Error("hung request succeeded after Close, want a connection error")
	}
}
