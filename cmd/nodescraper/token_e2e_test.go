package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/internal/exporter"
	"github.com/nodescraper/nodescraper/scrapeloop"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
)

// silentTokenEndpoint accepts TCP connections and never answers: each
// connection is held open until the client closes it (or the test ends).
// It records, per connection, when it was accepted and closed and the
// request line the client sent.
type silentTokenEndpoint struct {
	ln net.Listener

	mu    sync.Mutex
	conns []*heldConn
}

type heldConn struct {
	c                net.Conn
	accepted, closed time.Time // closed is zero while the client holds it
	requestLine      string
}

func startSilentTokenEndpoint(t *testing.T, addr string) *silentTokenEndpoint {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &silentTokenEndpoint{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h := &heldConn{c: c, accepted: time.Now()}
			s.mu.Lock()
			s.conns = append(s.conns, h)
			s.mu.Unlock()
			go func() {
				br := bufio.NewReader(c)
				line, _ := br.ReadString('\n')
				s.mu.Lock()
				h.requestLine = strings.TrimSpace(line)
				s.mu.Unlock()
				_, _ = io.Copy(io.Discard, br) // until the client gives up
				s.mu.Lock()
				h.closed = time.Now()
				s.mu.Unlock()
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, h := range s.conns {
			h.c.Close()
		}
	})
	return s
}

func (s *silentTokenEndpoint) addr() string { return s.ln.Addr().String() }

// snapshot returns a copy of every connection's record so far.
func (s *silentTokenEndpoint) snapshot() []heldConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]heldConn, len(s.conns))
	for i, h := range s.conns {
		out[i] = *h
	}
	return out
}

// finished counts the connections the client has closed.
func (s *silentTokenEndpoint) finished() int {
	n := 0
	for _, h := range s.snapshot() {
		if !h.closed.IsZero() {
			n++
		}
	}
	return n
}

// agentTarget is what the tests read of an active target in the agent's
// /api/v1/targets.
type agentTarget struct {
	URL, Health, LastError string
	LastDuration, Interval time.Duration
}

// agentTargets reads the agent's /api/v1/targets.
func agentTargets(t *testing.T, a *agentProc) (targets []agentTarget, rejected []scrapeloop.Problem) {
	t.Helper()
	resp, err := http.Get("http://" + a.addr + "/api/v1/targets")
	if err != nil {
		t.Fatalf("agent targets: %v", err)
	}
	defer resp.Body.Close()
	var page struct {
		Data struct {
			Active []struct {
				ScrapeURL          string  `json:"scrapeUrl"`
				Health             string  `json:"health"`
				LastError          string  `json:"lastError"`
				LastScrapeDuration float64 `json:"lastScrapeDuration"`
				ScrapeInterval     string  `json:"scrapeInterval"`
			} `json:"activeTargets"`
			Rejected []scrapeloop.Problem `json:"rejectedMonitors"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatalf("agent targets: %v", err)
	}
	for _, at := range page.Data.Active {
		iv, err := model.ParseDuration(at.ScrapeInterval)
		if err != nil {
			t.Fatalf("agent targets: %s: scrapeInterval: %v", at.ScrapeURL, err)
		}
		targets = append(targets, agentTarget{
			URL: at.ScrapeURL, Health: at.Health, LastError: at.LastError,
			LastDuration: time.Duration(at.LastScrapeDuration * float64(time.Second)), Interval: time.Duration(iv),
		})
	}
	return targets, page.Data.Rejected
}

func findTarget(ts []agentTarget, url string) (agentTarget, bool) {
	for _, s := range ts {
		if s.URL == url {
			return s, true
		}
	}
	return agentTarget{}, false
}

// TestKubeHungTokenEndpoint runs the real binary in Kubernetes mode against
// a real control plane (etcd, kube-apiserver, kube-controller-manager). Two
// pods on the agent's node are scraped: "plain" without auth, and "secure"
// through a ServiceMonitor whose endpoint uses OAuth2 client credentials
// (client id and secret from a Secret) with a token URL on a listener that
// accepts connections and never answers; scrapeTimeout 1s, interval 2s.
// The secure target must go down within a few seconds, its last error
// naming the token fetch, each scrape (and each held token connection)
// bounded by about its timeout, while the plain target's counters reach the
// intake exactly. A SIGTERM while a token fetch hangs must end the agent
// cleanly within 5 s.
func TestKubeHungTokenEndpoint(t *testing.T) {
	begin := time.Now()
	const key = "token-key-0123456789abcdef012345678"
	const ns, node = "tokens", "node-t"
	const timeout, interval = time.Second, 2 * time.Second
	in := startIntake(t, key)
	cp := controlplane.ForTest(t, controlplane.Config{ControllerManager: true})
	ctx := t.Context()

	if _, err := cp.CreateNode(ctx, node, netip.MustParseAddr("127.0.1.101"), nil); err != nil {
		t.Fatal(err)
	}
	hole := startSilentTokenEndpoint(t, "127.0.0.103:0")
	tokenURL := "http://" + hole.addr() + "/token"

	// serve serves h as a pod at a loopback "pod IP" and returns the port.
	serve := func(ip string, h http.Handler) (net.Listener, int32) {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close() })
		return ln, int32(ln.Addr().(*net.TCPAddr).Port)
	}

	// plain: a normal exporter, no auth, scraped every second.
	plain := exporter.New()
	jobs := plain.Family("jobs_total", exporter.Counter, "Jobs.")
	jobs.Set(`kind="a"`, 100)
	jobs.Set(`kind="b"`, 5)
	plainLn, plainPort := serve("127.0.0.101", plain)
	// secure: its scrapes need a token the endpoint never hands out, so it
	// must never be reached.
	secure := exporter.New()
	secure.Family("secrets_total", exporter.Counter, "Secrets.").Set("", 1)
	secureLn, securePort := serve("127.0.0.102", secure)
	secureURL := "http://" + secureLn.Addr().String() + "/metrics"

	for _, p := range []struct {
		name, ip string
		port     int32
	}{{"plain", "127.0.0.101", plainPort}, {"secure", "127.0.0.102", securePort}} {
		pod := controlplane.Pod(ns, p.name+"-0", node, map[string]string{"app": p.name},
			corev1.ContainerPort{Name: "metrics", ContainerPort: p.port, Protocol: corev1.ProtocolTCP})
		if _, err := cp.CreatePod(ctx, pod, controlplane.PodStatus{IP: netip.MustParseAddr(p.ip)}); err != nil {
			t.Fatal(err)
		}
		svc := controlplane.Service(ns, p.name, map[string]string{"app": p.name}, controlplane.ServicePort("metrics", 80, "metrics"))
		svc.Labels = map[string]string{"app": p.name}
		if err := cp.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
	}
	secureEP := monitoringv1.Endpoint{Port: "metrics", Interval: "2s", ScrapeTimeout: "1s"}
	secureEP.OAuth2 = &monitoringv1.OAuth2{
		ClientID: monitoringv1.SecretOrConfigMap{Secret: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "oauth-client"}, Key: "id"}},
		ClientSecret: corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "oauth-client"}, Key: "secret"},
		TokenURL: monitoringv1.URL(tokenURL),
		Scopes:   []string{"metrics.read"},
	}
	if err := cp.Create(ctx,
		controlplane.Secret(ns, "oauth-client", map[string]string{"id": "nodescraper", "secret": "s3cret"}),
		controlplane.ServiceMonitor(ns, "plain", map[string]string{"app": "plain"}, monitoringv1.Endpoint{Port: "metrics", Interval: "1s"}),
		controlplane.ServiceMonitor(ns, "secure", map[string]string{"app": "secure"}, secureEP),
	); err != nil {
		t.Fatal(err)
	}

	// want is the plain target's true increase by "metric|tag" since the
	// agent's first scrape (the baseline: nothing grows before it).
	want := map[string]float64{}
	i := 0
	step := func() {
		i++
		jobs.Add(`kind="a"`, float64(3*i))
		want["jobs.count|kind:a"] += float64(3 * i)
		if i%2 == 1 {
			jobs.Add(`kind="b"`, 1)
			want["jobs.count|kind:b"]++
		}
	}
	// grow grows the counters, then waits for a scrape that sees it.
	grow := func() {
		t.Helper()
		step()
		waitScrapes(t, plain, plain.Scrapes()+1)
	}

	agent := startAgent(t, "agent", []string{"DD_API_KEY=" + key},
		"--kubeconfig", cp.Kubeconfig, "--node-name", node, "--dd-url", in.URL, "--allow-insecure-datadog-url", "--allowed-token-urls", tokenURL,
		"--state-dir", filepath.Join(t.TempDir(), "state"), "--flush-interval", "200ms")
	started := time.Now() // the process started (startAgent builds the binary first)
	common := []string{"job:plain", "endpoint:metrics", "kube_service:plain",
		"instance:" + plainLn.Addr().String(), "kube_namespace:" + ns, "host:" + node}
	waitScrapes(t, plain, 1) // the baseline
	t.Logf("plain target's first scrape %v after the agent started", time.Since(started).Round(time.Millisecond))

	// Watch the targets page until the secure target is down and the agent
	// has given up two token fetches, growing the plain target by one step
	// after each of its scrapes meanwhile.
	var down agentTarget
	var listed, firstDown time.Time // when the secure target was first listed, and first seen down
	for deadline, grown := time.Now().Add(20*time.Second), plain.Scrapes(); ; {
		if n := plain.Scrapes(); n > grown {
			step()
			grown = n
		}
		ts, _ := agentTargets(t, agent)
		s, ok := findTarget(ts, secureURL)
		if ok && listed.IsZero() {
			listed = time.Now()
		}
		if ok && s.Health == "down" && firstDown.IsZero() {
			firstDown = time.Now()
		}
		if ok && s.Health == "down" && hole.finished() >= 2 {
			down = s
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("secure target not down after two token fetches within 20s: %+v (found %v), token connections %d finished of %d",
				s, ok, hole.finished(), len(hole.snapshot()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("secure target listed %v after the agent started, seen down %v after that: lastDuration %v (timeout %v), lastError %q",
		listed.Sub(started).Round(time.Millisecond), firstDown.Sub(listed).Round(time.Millisecond), down.LastDuration, timeout, down.LastError)
	// Its first scrape starts within one interval of the loop's start and
	// fails after its timeout; 2s of slack for a loaded machine.
	if d := firstDown.Sub(listed); d > interval+timeout+2*time.Second {
		t.Errorf("secure target seen down %v after it was listed; want within %v", d, interval+timeout+2*time.Second)
	}
	if !strings.Contains(down.LastError, "oauth2 token fetch from "+tokenURL) {
		t.Errorf("lastError %q does not name the token fetch from %s", down.LastError, tokenURL)
	}
	if down.LastDuration < timeout*9/10 || down.LastDuration > 2*timeout {
		t.Errorf("the failed scrape took %v; want about its timeout %v (at most %v)", down.LastDuration, timeout, 2*timeout)
	}
	if down.Interval != interval {
		t.Errorf("secure target interval %v, want %v", down.Interval, interval)
	}

	// The plain target keeps being scraped beside it.
	for range 3 {
		grow()
	}
	ts, rejected := agentTargets(t, agent)
	if len(rejected) != 0 {
		t.Errorf("rejected monitors: %+v", rejected)
	}
	plainURL := "http://" + plainLn.Addr().String() + "/metrics"
	if s, ok := findTarget(ts, plainURL); !ok || s.Health != "up" {
		t.Errorf("plain target %s: %+v (found %v), want up", plainURL, s, ok)
	}
	if s, ok := findTarget(ts, secureURL); !ok || s.Health != "down" || !strings.Contains(s.LastError, "oauth2 token fetch from "+tokenURL) {
		t.Errorf("secure target %s: %+v (found %v), want down on the token fetch", secureURL, s, ok)
	}

	// Stop growing; the scrape after the last step sees the final values.
	waitScrapes(t, plain, plain.Scrapes()+1)
	waitCounts(in, want, common)

	// SIGTERM while a token fetch hangs: wait for a fetch newer than the
	// ones seen so far that the agent has held for half its timeout.
	seen := len(hole.snapshot())
	var inFlight heldConn
	for deadline := time.Now().Add(10 * time.Second); ; {
		cs := hole.snapshot()
		if j := slices.IndexFunc(cs[seen:], func(h heldConn) bool {
			return h.closed.IsZero() && time.Since(h.accepted) >= timeout/2
		}); j >= 0 {
			inFlight = cs[seen+j]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new token fetch within 10s (%d connections so far)", len(cs))
		}
		time.Sleep(5 * time.Millisecond)
	}
	heldFor := time.Since(inFlight.accepted)
	took := agent.stop(5 * time.Second)
	t.Logf("SIGTERM with a token fetch held for %v: the agent exited cleanly in %v",
		heldFor.Round(time.Millisecond), took.Round(time.Millisecond))

	// What the token endpoint saw: every fetch a POST to /token, each
	// connection given up by the agent within about the scrape's timeout.
	cs := hole.snapshot()
	for j, h := range cs {
		held := h.closed.Sub(h.accepted)
		if h.closed.IsZero() {
			held = -1 // still open: reported below
		}
		t.Logf("token connection %d: %q, held %v", j+1, h.requestLine, held.Round(time.Millisecond))
		if h.requestLine != "POST /token HTTP/1.1" {
			t.Errorf("token connection %d: request line %q, want POST /token HTTP/1.1", j+1, h.requestLine)
		}
	}
	// The client closes its side when it gives up; allow the close to reach
	// the endpoint's reader.
	for deadline := time.Now().Add(2 * time.Second); hole.finished() < len(cs) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	for j, h := range hole.snapshot() {
		switch {
		case h.closed.IsZero():
			t.Errorf("token connection %d still open after the agent exited", j+1)
		case h.closed.Sub(h.accepted) > 2*timeout:
			t.Errorf("token connection %d held %v, more than twice the scrape timeout %v", j+1, h.closed.Sub(h.accepted), timeout)
		}
	}
	if n := secure.Scrapes(); n != 0 {
		t.Errorf("the secure pod was scraped %d times without a token", n)
	}

	checkCounts(t, in, want, common, nil)
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		metric, tags := seriesTags(k, common)
		t.Logf("plain %-20s true increase %6g  received %6g (%d points)", k, want[k], in.Sum(metric, tags...), len(in.Points(metric, tags...)))
	}
	st := in.Stats()
	t.Logf("plain scrapes %d, secure scrapes %d, token fetches %d; intake: %d points, %d duplicate, %d refused requests; took %v",
		plain.Scrapes(), secure.Scrapes(), len(cs), st.Points, st.DuplicatePoints, st.RejectedTotal(), time.Since(begin).Round(time.Millisecond))
	if st.DuplicatePoints != 0 || st.RejectedTotal() != 0 {
		t.Errorf("intake: %d duplicate points, %d refused requests (%v)", st.DuplicatePoints, st.RejectedTotal(), st.LastRejects)
	}
}
