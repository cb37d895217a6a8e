package scrapeloop

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/internal/exporter"
	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// handlerTransport answers every request with h, in memory: in a synctest
// bubble no goroutine then waits on a network outside it, and the loops'
// timers run on the bubble's clock.
type handlerTransport struct{ h http.Handler }

func (ht handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	ht.h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.ContentLength = int64(rec.Body.Len())
	resp.Request = req
	return resp, nil
}

// TestManagerReconfigureKeepsDeltas drives a Manager through the changes a
// live target sees (a new interval, new limits, a rotated Secret, a pod
// label that only changes its Datadog tags) against an exporter whose
// counter grows on every scrape, on a synctest bubble's clock. Each change
// restarts the target's loop with a new appender, whose first scrape comes
// within one interval and the next one interval later; the delta state
// carries over, so every scrape after the first sends exactly the increase
// since the previous one, across the restarts: nothing lost, nothing counted
// twice. Only a change of the target labels (its series identity) starts
// fresh.
func TestManagerReconfigureKeepsDeltas(t *testing.T) {
	synctest.Test(t, testManagerReconfigureKeepsDeltas)
}

func testManagerReconfigureKeepsDeltas(t *testing.T) {
	e := exporter.New()
	c := e.Family("c_total", exporter.Counter, "")
	g := e.Family("g", exporter.Gauge, "") // c's value, so the test knows what each scrape saw
	c.Set("", 100)
	var mu sync.Mutex
	allowed := map[string]bool{"Bearer s1": true}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !allowed[r.Header.Get("Authorization")] {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		c.Add("", 1)
		g.Set("", c.Value(""))
		e.ServeHTTP(w, r)
	})
	const addr = "app.test:9100"
	allow := func(tokens ...string) {
		mu.Lock()
		defer mu.Unlock()
		clear(allowed)
		for _, tok := range tokens {
			allowed["Bearer "+tok] = true
		}
	}

	backend := &recBackend{}
	store := deltastore.New(deltastore.Config{Logger: slog.New(slog.DiscardHandler)})
	m := NewManager(Config{Store: store, Backend: backend, Transport: handlerTransport{h}, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	bearer := func(tok string) *httpconfig.Config {
		return &httpconfig.Config{EnableHTTP2: true, Authorization: &httpconfig.Authorization{Credentials: httpconfig.Secret(tok)}}
	}
	tg := target.Target{URL: "http://" + addr + "/metrics", Labels: labels.FromStrings("instance", addr, "job", "app"),
		Interval: time.Second, Timeout: 500 * time.Millisecond, HTTP: bearer("s1"),
		Discovered: labels.FromStrings("__meta_kubernetes_namespace", "shop", "__meta_kubernetes_pod_label_app", "web")}
	steps := []struct {
		name   string
		change func(*target.Target)
		fresh  bool // a new identity: its first scrape is a baseline
	}{
		{"start", func(*target.Target) {}, true},
		{"limits", func(tg *target.Target) { tg.Limits = target.Limits{Samples: 1000, Labels: 20} }, false},
		{"Secret rotated", func(tg *target.Target) { allow("s1", "s2"); tg.HTTP = bearer("s2") }, false},
		{"pod label (a Datadog tag) changed", func(tg *target.Target) {
			tg.Discovered = labels.FromStrings("__meta_kubernetes_namespace", "shop", "__meta_kubernetes_pod_label_app", "web2")
		}, false},
		{"interval 1s to 2s", func(tg *target.Target) { tg.Interval, tg.Timeout = 2*time.Second, time.Second }, false},
		{"target label changed: a new identity", func(tg *target.Target) {
			tg.Labels = labels.FromStrings("instance", addr, "job", "app2")
			tg.Interval, tg.Timeout = time.Second, 500*time.Millisecond
		}, true},
	}
	var apps []*recAppender
	for i, s := range steps {
		s.change(&tg)
		m.Sync(ctx, []target.Target{tg})
		if s.name == "Secret rotated" {
			allow("s2") // the old loop has stopped; the new one must use the new secret
		}
		all := backend.appenders()
		if len(all) != i+1 {
			t.Fatalf("%s: %d appenders, want %d (one per configuration)", s.name, len(all), i+1)
		}
		a := all[i]
		if a.target.Key() != tg.Key() {
			t.Fatalf("%s: the new appender is for another configuration", s.name)
		}
		if !labels.Equal(a.target.Discovered, tg.Discovered) {
			t.Errorf("%s: the appender has discovered labels %s, want %s (its tags)", s.name, a.target.Discovered, tg.Discovered)
		}
		for _, old := range apps {
			if _, closed := old.state(); !closed {
				t.Errorf("%s: appender %d of an earlier configuration not closed", s.name, old.id)
			}
		}
		apps = append(apps, a)
		// The first scrape after the change, within an interval; of the new
		// identity also the next, its first delta, an interval later.
		want := 1
		if s.fresh {
			want = 2
		}
		synced := time.Now()
		for n, _ := a.state(); n < want; n, _ = a.state() {
			if time.Since(synced) > time.Duration(want)*tg.Interval {
				t.Fatalf("%s: %d scrapes of the new loop in %s, want %d (status %+v)", s.name, n, time.Since(synced), want, m.Targets())
			}
			time.Sleep(10 * time.Millisecond)
			synctest.Wait() // the scrape due now is done
		}
		if n, _ := a.state(); n != want {
			t.Fatalf("%s: %d scrapes of the new loop, want %d", s.name, n, want)
		}
	}
	cancel()
	m.Wait()

	// Every scrape's delta is the increase the exporter's gauge shows since
	// the identity's previous scrape, whichever loop made either.
	var prev, first, sent float64
	for i, a := range apps {
		n, _ := a.state()
		for j := range n {
			var gv, cv float64
			var haveG, haveC bool
			for _, p := range a.batch(j) {
				switch p.Labels.Get(model.MetricNameLabel) {
				case "g":
					gv, haveG = p.Value, true
				case "c_total":
					if haveC {
						t.Errorf("%s, scrape %d: two points of c_total", steps[i].name, j)
					}
					cv, haveC = p.Value, true
					sent += cv
				}
			}
			if !haveG {
				t.Fatalf("%s, scrape %d: no gauge point (a failed scrape?)", steps[i].name, j)
			}
			switch {
			case j == 0 && steps[i].fresh:
				if haveC {
					t.Errorf("%s: the new identity's first scrape sent %g, want a baseline", steps[i].name, cv)
				}
				if i > 0 {
					t.Logf("identity 1: true increase %g, sent %g", prev-first, sent)
					if sent != prev-first {
						t.Errorf("identity 1: sent %g of a true increase of %g", sent, prev-first)
					}
				}
				first, sent = gv, 0
			case !haveC:
				t.Errorf("%s, scrape %d: no delta of c_total: the increase of %g since the previous scrape is lost", steps[i].name, j, gv-prev)
			case cv != gv-prev:
				t.Errorf("%s, scrape %d: delta %g, want the true increase %g", steps[i].name, j, cv, gv-prev)
			}
			prev = gv
		}
	}
	t.Logf("identity 2: true increase %g, sent %g", prev-first, sent)
	if sent != prev-first {
		t.Errorf("identity 2: sent %g of a true increase of %g", sent, prev-first)
	}
	// The first identity's state went with it: only the second's 2 series.
	if n := store.Len(); n != 2 {
		t.Errorf("the store holds %d series, want 2", n)
	}
	for _, a := range apps {
		a.check(t)
	}
}

// TestSyncHandover: what a reconfigured target's next loop takes over from
// the previous one, and what happens to the state when no next loop can run.
func TestSyncHandover(t *testing.T) {
	store := deltastore.New(deltastore.Config{Logger: slog.New(slog.DiscardHandler)})
	m := NewManager(Config{Store: store, Backend: &recBackend{}, MaxInterval: 90 * time.Minute, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// An hour's interval: the loops do not scrape during the test.
	x := target.Target{URL: "http://127.0.0.1:1/metrics", Labels: labels.FromStrings("job", "app"), Interval: time.Hour, Timeout: time.Second}
	running := func() *loop {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, l := range m.loops {
			return l
		}
		return nil
	}
	m.Sync(ctx, []target.Target{x})
	tab := store.Table(x.Seed())
	tab.Lock()
	tab.Add(1)
	tab.Add(2)
	tab.Unlock()
	// The last scrape saw series it could not admit (series budget): the next
	// loop must not take a series admitted later for one that just started.
	running().incomplete = true

	y := x
	y.Limits.Samples = 10
	m.Sync(ctx, []target.Target{y})
	if l := running(); l == nil || l.target.Key() != y.Key() || !l.incomplete || l.table != tab {
		t.Fatalf("the new loop did not take over the table and its incomplete window: %+v", l)
	}
	// A configuration the manager refuses: no loop holds the identity, so
	// none would release its state when the target goes.
	z := y
	z.Interval = 2 * time.Hour
	m.Sync(ctx, []target.Target{z})
	if l := running(); l != nil {
		t.Fatalf("a loop runs for %s", l.target.URL)
	}
	if n := store.Len(); n != 0 {
		t.Errorf("the store holds %d series of a target that is not scraped", n)
	}
	cancel()
	m.Wait()
}
