package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
)

// options are the settings shared by every run.
type options struct {
	interval        time.Duration
	warmup, measure int           // scrape intervals
	ksmFile         string        // exposition of the ksm scenario's big target
	workDir         string        // runs' temporary directories go here
	keep            bool          // keep each run's directory (agent log, file_sd, state)
	modelEvery      int           // intake: every n-th payload checked against the datadog-api-client-go model
	profileDir      string        // if set, the agent's CPU profile of the measured window and heap profile at its end go here
	intakeLatency   time.Duration // the intake answers each POST this long after it arrives
	logf            func(format string, args ...any)
}

const (
	apiKey   = "nodebench0123456789abcdef01234567"
	nodeName = "bench-node"
)

// result is one scenario measured with one agent.
type result struct {
	Scenario     string  `json:"scenario"`
	Desc         string  `json:"description"`
	Agent        string  `json:"agent"`
	AgentVersion string  `json:"agent_version"`
	Targets      int     `json:"targets"`
	Series       int     `json:"series"` // samples per round of scrapes (every target once)
	Interval     float64 `json:"interval_seconds"`
	Window       float64 `json:"window_seconds"`

	Samples          int64              `json:"samples"` // served in the window
	Scrapes          int64              `json:"scrapes"`
	CPU              float64            `json:"agent_cpu_seconds"`
	SamplesPerCoreS  float64            `json:"samples_per_core_second"`
	CPUPerMSamples   float64            `json:"cpu_seconds_per_million_samples"`
	RSSMedian        int64              `json:"rss_median_bytes"`
	RSSMax           int64              `json:"rss_max_bytes"`
	RSSPerSeries     float64            `json:"rss_bytes_per_series"`
	CompressedBytes  int64              `json:"compressed_bytes"`
	BytesPerSample   float64            `json:"compressed_bytes_per_sample"`
	Points           int64              `json:"points_received"`
	LatencyP50       float64            `json:"latency_p50_seconds"`
	LatencyP99       float64            `json:"latency_p99_seconds"`
	HarnessCPU       float64            `json:"harness_cpu_seconds"`
	AgentDrops       float64            `json:"agent_drops"`
	AgentDropSeries  map[string]float64 `json:"agent_drop_counters,omitempty"`
	IntakePayloads   int64              `json:"intake_payloads"`
	SeriesVersions   map[string]int64   `json:"intake_payloads_by_series_api,omitempty"`
	ModelChecked     int64              `json:"intake_model_checked_payloads"`
	IntakeRejected   int64              `json:"intake_rejected"`
	IntakeReasons    map[string]int64   `json:"intake_reject_reasons,omitempty"`
	IntakeLastReject string             `json:"intake_last_reject,omitempty"`
	Check            checkResult        `json:"check"`
	ExitSeconds      float64            `json:"exit_seconds"`
	Error            string             `json:"error,omitempty"`
}

// run measures one scenario with one agent. A failure after the agent
// started still returns what was measured, with Error set.
func run(ctx context.Context, sc scenario, ag agentSpec, o options) (res result, err error) {
	res = result{Scenario: sc.name, Desc: sc.desc, Agent: ag.Name, AgentVersion: version(ag.Path), Interval: o.interval.Seconds()}
	dir, err := os.MkdirTemp(o.workDir, sc.name+"-"+ag.Name+"-")
	if err != nil {
		return res, fmt.Errorf("run dir: %w", err)
	}
	defer func() {
		if err == nil && !o.keep {
			err = os.RemoveAll(dir)
		} else {
			o.logf("kept %s", dir)
		}
	}()

	targets, ex, err := startTargets(sc, o)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, ex.close()) }()
	res.Targets = len(targets)
	keys := newKeyer()
	res.Series = learnSeries(keys, targets)

	tl := newTally(keys)
	sink, sinkURL, stopSink, err := startSink(tl, o.modelEvery, o.intakeLatency)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, stopSink()) }()

	o.logf("%s/%s: %d targets, %d series per round; starting %s", sc.name, ag.Name, res.Targets, res.Series, ag.Path)
	agent, err := launch(ctx, ag, dir, targets, sinkURL, o)
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_, serr := agent.stop(2 * time.Minute)
			err = errors.Join(err, serr)
		}
	}()

	if err := warmUp(ctx, agent, ex, o); err != nil {
		return res, err
	}
	err = profiled(ctx, agent, sc, ag, o, func() error {
		return measure(ctx, &res, agent, ex, sink, tl, o)
	})
	if err != nil {
		return res, err
	}

	// Freeze, let every target be scraped once more (the agent has then
	// processed the frozen values), read the agent's drop counters, stop it.
	if err := freeze(ctx, agent, ex, targets, o.interval); err != nil {
		return res, err
	}
	res.AgentDropSeries, res.AgentDrops, err = agent.dropCounters(ctx)
	if err != nil {
		return res, err
	}
	stopped = true
	exit, err := agent.stop(2 * time.Minute)
	res.ExitSeconds = exit.Seconds()
	if err != nil {
		return res, err
	}
	res.readSink(sink)
	res.Check = check(targets, tl, keys)
	return res, nil
}

// readSink copies what the stand-in intake accepted and refused into r.
func (r *result) readSink(sink *fakeintake.Sink) {
	st := sink.Stats()
	r.IntakePayloads, r.ModelChecked = st.Accepted, sink.ModelChecked()
	r.IntakeRejected = st.RejectedTotal()
	r.SeriesVersions = st.SeriesVersions
	r.IntakeReasons = map[string]int64{}
	for reason, n := range st.Rejected {
		r.IntakeReasons[string(reason)] = n
	}
	if n := len(st.LastRejects); n > 0 {
		r.IntakeLastReject = st.LastRejects[n-1].Message
	}
}

// startTargets builds the scenario's targets and starts their exporters.
func startTargets(sc scenario, o options) ([]*exportTarget, *exporters, error) {
	targets, err := buildTargets(sc, o)
	if err != nil {
		return nil, nil, err
	}
	ex, err := startExporters(targets)
	if err != nil {
		return nil, nil, err
	}
	return targets, ex, nil
}

// warmUp waits until every target has been scraped once (the baselines)
// and o.warmup more times.
func warmUp(ctx context.Context, agent *agentProc, ex *exporters, o options) error {
	warm := time.Duration(o.warmup+2)*o.interval + 2*time.Minute
	if err := waitFor(ctx, agent, warm, func() bool { return ex.minScrapes() >= int64(1+o.warmup) }); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	return nil
}

// learnSeries teaches keys every target's series and returns how many
// series one round of scrapes serves.
func learnSeries(keys *keyer, targets []*exportTarget) int {
	series := 0
	for _, t := range targets {
		t.src.learn(keys, t.targetLabels())
		_, n := t.src.render(nil, 1)
		series += n
	}
	return series
}

// freeze stops every target's values changing and waits until each has
// been scraped once more, so that the agent has processed the final values.
func freeze(ctx context.Context, agent *agentProc, ex *exporters, targets []*exportTarget, interval time.Duration) error {
	for _, t := range targets {
		t.freeze()
	}
	if err := waitFor(ctx, agent, 2*interval+time.Minute, func() bool { return ex.minPostFreeze() >= 1 }); err != nil {
		return fmt.Errorf("after freeze: %w", err)
	}
	return nil
}

// launch writes the targets' file_sd under dir, starts the agent on it
// (sending to sinkURL) and waits until it is healthy; an agent that does not
// become healthy is stopped.
func launch(ctx context.Context, ag agentSpec, dir string, targets []*exportTarget, sinkURL string, o options) (*agentProc, error) {
	sdPath := filepath.Join(dir, "targets.json")
	if err := writeFileSD(sdPath, targets); err != nil {
		return nil, err
	}
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	args := agentArgs(ag.Path, sdPath, sinkURL, filepath.Join(dir, "state"), listen, o.interval, o.logf)
	args = append(args, ag.Args...)
	agent, err := startAgent(ag.Path, args, apiKey, filepath.Join(dir, "agent.log"))
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = agent.waitHealthy(hctx)
	cancel()
	if err != nil {
		_, serr := agent.stop(2 * time.Minute)
		return nil, errors.Join(err, serr)
	}
	return agent, nil
}

// profiled runs measured; with o.profileDir set it takes the agent's CPU
// profile over the measured window and its heap profile after it.
func profiled(ctx context.Context, agent *agentProc, sc scenario, ag agentSpec, o options, measured func() error) error {
	var prof sync.WaitGroup
	if o.profileDir != "" {
		base := filepath.Join(o.profileDir, sc.name+"-"+ag.Name)
		window := time.Duration(o.measure)*o.interval - 2*time.Second
		prof.Go(func() {
			if err := agent.profile(ctx, fmt.Sprintf("profile?seconds=%d", int(window.Seconds())), base+"-cpu.pprof"); err != nil {
				o.logf("%s/%s: cpu profile: %v", sc.name, ag.Name, err)
			}
		})
	}
	err := measured()
	prof.Wait()
	if o.profileDir != "" {
		if perr := agent.profile(ctx, "heap?gc=1", filepath.Join(o.profileDir, sc.name+"-"+ag.Name+"-heap.pprof")); perr != nil {
			o.logf("%s/%s: heap profile: %v", sc.name, ag.Name, perr)
		}
	}
	return err
}

// measure runs the measured window: CPU, RSS every second, served samples,
// bytes and latency at the intake.
func measure(ctx context.Context, res *result, agent *agentProc, ex *exporters, sink *fakeintake.Sink, tl *tally, o options) error {
	cpu0, err := agent.cpuSeconds()
	if err != nil {
		return err
	}
	served0, st0, self0, t0 := ex.totals(), sink.Stats(), selfCPU(), time.Now()
	tl.measuring.Store(true)

	var rss []int64
	var rssErr error
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			v, err := agent.rssBytes()
			if err != nil {
				rssErr = err
				return
			}
			rss = append(rss, v)
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	werr := waitFor(ctx, agent, time.Duration(o.measure)*o.interval, func() bool { return false })
	stop()
	wg.Wait()
	if werr != nil && !errors.Is(werr, errTimeout) {
		return fmt.Errorf("measured window: %w", werr)
	}
	tl.measuring.Store(false)
	cpu1, err := agent.cpuSeconds()
	if err != nil {
		return err
	}
	served1, st1, self1 := ex.totals(), sink.Stats(), selfCPU()
	if rssErr != nil {
		return rssErr
	}
	res.Window = time.Since(t0).Seconds()
	res.Samples = served1.samples - served0.samples
	res.Scrapes = served1.scrapes - served0.scrapes
	res.CPU = cpu1 - cpu0
	res.HarnessCPU = self1 - self0
	if res.CPU > 0 {
		res.SamplesPerCoreS = float64(res.Samples) / res.CPU
	}
	if res.Samples > 0 {
		res.CPUPerMSamples = res.CPU / float64(res.Samples) * 1e6
	}
	slices.Sort(rss)
	if len(rss) > 0 {
		res.RSSMedian, res.RSSMax = rss[len(rss)/2], rss[len(rss)-1]
		res.RSSPerSeries = float64(res.RSSMedian) / float64(res.Series)
	}
	res.CompressedBytes = st1.CompressedBytes - st0.CompressedBytes
	res.Points = st1.Points - st0.Points
	if res.Samples > 0 {
		res.BytesPerSample = float64(res.CompressedBytes) / float64(res.Samples)
	}
	res.LatencyP50, res.LatencyP99, _ = tl.latency()
	return nil
}

var errTimeout = errors.New("timed out")

// waitFor polls cond every 200 ms until it holds, the agent exits, ctx ends
// or timeout passes (errTimeout).
func waitFor(ctx context.Context, agent *agentProc, timeout time.Duration, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case err := <-agent.exited:
			agent.exited <- err
			return fmt.Errorf("agent exited: %v (log %s)", err, agent.log.Name())
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-deadline.C:
			return fmt.Errorf("%w after %s", errTimeout, timeout)
		case <-tick.C:
		}
	}
	return nil
}

// buildTargets makes the scenario's sources and their file_sd labels.
func buildTargets(sc scenario, o options) ([]*exportTarget, error) {
	var targets []*exportTarget
	if sc.ksm {
		ft, err := loadFileTarget(o.ksmFile)
		if err != nil {
			return nil, err
		}
		targets = append(targets, &exportTarget{src: ft, labels: []label{
			{"job", "kube-state-metrics"}, {"namespace", "monitoring"}, {"pod", "kube-state-metrics-6d4b8f7c9d-x2k4q"}}})
	}
	fams := bundle()
	start := time.Now().Add(-time.Hour).Unix()
	for i := range sc.targets {
		s := seed(uint64(i), 0x7a)
		app := apps[s%uint64(len(apps))]
		targets = append(targets, &exportTarget{
			src: newSynthTarget(uint64(i), sc.series, sc.churn, fams, start),
			labels: []label{
				{"job", app},
				{"namespace", namespaces[(s>>8)%uint64(len(namespaces))]},
				{"pod", app + "-" + hexN(s, 10) + "-" + hexN(s>>3, 5)},
			},
		})
	}
	return targets, nil
}

// writeFileSD writes the Prometheus file_sd JSON listing every target.
func writeFileSD(path string, targets []*exportTarget) error {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	groups := make([]group, 0, len(targets))
	for _, t := range targets {
		ls := map[string]string{}
		for _, l := range t.labels {
			ls[l.name] = l.value
		}
		groups = append(groups, group{Targets: []string{t.addr}, Labels: ls})
	}
	b, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return fmt.Errorf("file_sd: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("file_sd: %w", err)
	}
	return nil
}

// startSink serves a strict, non-retaining intake feeding tl on 127.0.0.1;
// with latency > 0 each request is answered that long after it arrives (a
// cluster's round trip to Datadog).
func startSink(tl *tally, modelEvery int, latency time.Duration) (*fakeintake.Sink, string, func() error, error) {
	sink, err := fakeintake.NewSink(fakeintake.SinkConfig{
		Config:     fakeintake.Config{APIKeys: []string{apiKey}},
		ModelEvery: modelEvery,
		Unmarshal:  gojson.Unmarshal, // 3x encoding/json; the model-checked payloads use the model's own decoding
		OnAccept:   tl.accept,
	})
	if err != nil {
		return nil, "", nil, fmt.Errorf("intake: %w", err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, fmt.Errorf("intake: listen: %w", err)
	}
	var h http.Handler = sink
	if latency > 0 {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t := time.NewTimer(latency)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
			sink.ServeHTTP(w, r)
		})
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	stop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := srv.Shutdown(ctx)
		sink.Close()
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, fmt.Errorf("intake: serve: %w", serr))
		}
		return err
	}
	return sink, "http://" + ln.Addr().String(), stop, nil
}

// selfCPU is this process's user plus system CPU time in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
