package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/ddclient"
	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/informer/filesd"
	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop"
)

// agent is what run builds from the configuration: the components, and the
// metric sets they own, in the order /metrics shows them.
type agent struct {
	c        *config
	logger   *slog.Logger
	started  time.Time
	stateDir string // "" in a dry run
	store    *deltastore.Store
	client   *ddclient.Client // nil in a dry run
	mgr      *scrapeloop.Manager
	// nodeAddrs are the addresses node targets may reach, which Kubernetes
	// discovery keeps and the scraper checks each connection against; nil
	// in local mode and with --allow-other-addresses.
	nodeAddrs *target.NodeAddrs
	sets      []*metrics.Set
	help      []map[string]string // HELP text of the sets' metrics

	// From discovery: whether it has synced, and the monitors it rejected
	// (nil in local mode), for the targets page.
	discoverySynced func() bool
	problems        func() []scrapeloop.Problem
	restored        atomic.Bool // the delta state is back: /readyz may say ok
}

// run is the agent. It returns when ctx is cancelled and everything has shut
// down. ready, if not nil, receives the endpoint's address once it listens.
//
// Discovery, the delta store's checkpoints and the endpoint each run in one
// goroutine of a group; the scrape manager runs on run's own goroutine and
// the Datadog client beside it (scrape). run waits for every one of them
// before it returns.
func run(ctx context.Context, c *config, stdout io.Writer, logger *slog.Logger, ready chan<- string) error {
	started := time.Now()
	// TYPE lines let a scraper of our own /metrics (this agent, in the demo)
	// tell counters from gauges.
	metrics.ExposeMetadata(true)
	logger.Info("nodescraper starting", "version", buildVersion(), "node", c.nodeName, "host", c.host(), "dry_run", c.dryRun)
	if lim, why := applyMemoryLimit(c.memoryLimit, os.Getenv, cgroupFiles); lim > 0 {
		logger.Info("Go memory limit set", "bytes", lim, "from", why)
	}
	if p, why := applyGCPercent(c.gcPercent, os.Getenv); p != 100 {
		logger.Info("Go GC percent set", "percent", p, "from", why)
	}
	a, err := newAgent(ctx, c, stdout, logger)
	if err != nil {
		return err
	}
	a.started = started

	var group sync.WaitGroup
	defer group.Wait()
	// Components stop when runCtx ends: the caller's cancellation, or a
	// component that fails.
	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()

	targets := make(chan []target.Target, 1)
	if err := a.startDiscovery(runCtx, stopAll, &group, targets); err != nil {
		return err
	}
	for _, set := range a.sets {
		metrics.RegisterSet(set)
	}
	defer func() {
		for _, set := range a.sets {
			metrics.UnregisterSet(set, false)
		}
	}()
	srv, err := a.serve(&group, ready)
	if err != nil {
		stopAll()
		return err
	}
	defer srv.Close()
	if err := a.restore(runCtx); err != nil {
		stopAll()
		return err
	}
	group.Go(func() { a.store.Run(runCtx) })
	group.Go(func() { releasePages(runCtx, logger) })
	clientDone := a.scrape(runCtx, targets)
	a.shutdown(srv, clientDone)
	stopAll()
	group.Wait()
	logger.Info("nodescraper stopped")
	return nil
}

// newAgent builds the delta store, the backend (the Datadog client, or the
// dry-run printer) and the scrape manager; none runs yet.
func newAgent(ctx context.Context, c *config, stdout io.Writer, logger *slog.Logger) (*agent, error) {
	a := &agent{c: c, logger: logger, stateDir: c.stateDir}
	if c.dryRun {
		a.stateDir = "" // a dry run must not move the state the real agent continues from
	}
	a.store = deltastore.New(deltastore.Config{
		MaxSeries:             c.maxSeries,
		MaxSeriesPerTarget:    c.budgets.seriesPerTarget(c.maxSeries),
		MaxSeriesPerNamespace: c.budgets.seriesPerNamespace(c.maxSeries),
		StaleAfter:            c.seriesStaleAfter,
		Dir:                   a.stateDir,
		CheckpointInterval:    c.checkpointInterval,
		MaxAge:                c.checkpointMaxAge,
		Logger:                logger,
	})
	a.addMetrics(a.store.Metrics(), a.store.MetricsHelp())

	var backend scrapeloop.Backend // Datadog, or the dry-run printer
	if c.dryRun {
		backend = ddclient.NewPrinter(stdout, c.mapping())
	} else {
		client, err := newClient(ctx, c, logger)
		if err != nil {
			return nil, err
		}
		a.client, backend = client, client
		a.addMetrics(client.Metrics(), client.MetricsHelp())
	}

	if c.staticTargets == "" && !c.allowOtherAddrs {
		a.nodeAddrs = &target.NodeAddrs{}
	}
	a.mgr = scrapeloop.NewManager(scrapeloop.Config{
		NodeAddrs:     a.nodeAddrs,
		Store:         a.store,
		Backend:       backend,
		DefaultLimits: c.limits,
		// The memory limit run set (or GOMEMLIMIT): SetMemoryLimit(-1) reads it.
		MaxBytesInFlight: c.budgets.inFlight(debug.SetMemoryLimit(-1)),
		Logger:           logger,
		// A longer interval would let the delta state expire between scrapes.
		MaxInterval: c.seriesStaleAfter / 2,
	})
	a.addMetrics(a.mgr.Metrics(), a.mgr.MetricsHelp())
	return a, nil
}

// newClient builds the Datadog client and checks the API key once.
func newClient(ctx context.Context, c *config, logger *slog.Logger) (*ddclient.Client, error) {
	v3 := c.seriesV3()
	api, path := "v2", "/api/v2/series"
	if v3 {
		api, path = "v3", "/api/intake/metrics/v3/series"
	}
	logger.Info("Datadog series API", "api", api, "path", path, "url", c.apiURL(), "use_v3_api_series", c.useV3Series)
	client, err := ddclient.New(ddclient.Config{
		URL:              c.apiURL(),
		SeriesV3:         v3,
		APIKey:           c.apiKey,
		APIKeyFile:       c.apiKeyFileToWatch(),
		Mapping:          c.mapping(),
		ServiceChecks:    c.serviceChecks,
		AppKey:           c.appKey,
		AppKeyFile:       c.appKeyFile,
		MetadataInterval: c.metadataInterval,
		MetadataMaxNames: c.metadataMaxNames,
		Compression:      c.compression,
		FlushInterval:    c.flushInterval,
		MaxQueueBytes:    c.queueBytes(),
		SpoolMaxBytes:    c.spoolBytes(),
		SendConcurrency:  c.sendConcurrency,
		Logger:           logger,
	})
	if err != nil {
		return nil, err
	}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := client.Validate(vctx); err != nil {
		// Keep running: the key may be fixed through DD_API_KEY_FILE, and
		// points are held meanwhile. Readiness reports the problem.
		logger.Error("Datadog API key check failed", "err", err)
	}
	return client, nil
}

// addMetrics adds a component's metric set and the HELP text of its metrics.
func (a *agent) addMetrics(set *metrics.Set, help map[string]string) {
	a.sets = append(a.sets, set)
	a.help = append(a.help, help)
}

// startDiscovery starts the file_sd discovery (--static-targets) or the
// Kubernetes one in group; it sends target sets to targets. A Kubernetes
// discovery that fails stops everything (stopAll).
func (a *agent) startDiscovery(ctx context.Context, stopAll func(), group *sync.WaitGroup, targets chan []target.Target) error {
	c, logger := a.c, a.logger
	if c.staticTargets != "" {
		static := metrics.NewSet()
		a.addMetrics(static, filesd.MetricsHelp())
		scfg := filesd.Config{
			Metrics:  static,
			Path:     c.staticTargets,
			Defaults: relabel.Defaults{Interval: c.interval, Timeout: c.timeout},
			Logger:   logger,
		}
		if _, err := filesd.Load(scfg); err != nil {
			return err
		}
		a.discoverySynced = func() bool { return true }
		group.Go(func() { filesd.Run(ctx, scfg, targets) })
		return nil
	}
	kube, err := newKubeDiscovery(c, a.nodeAddrs, logger)
	if err != nil {
		return err
	}
	a.addMetrics(kube.Metrics(), kube.MetricsHelp())
	a.discoverySynced = kube.Synced
	a.problems = func() []scrapeloop.Problem {
		var ps []scrapeloop.Problem
		for _, r := range kube.Rejected() {
			ps = append(ps, scrapeloop.Problem{Object: fmt.Sprintf("%s %s/%s", r.Kind, r.Namespace, r.Name), Reason: r.Reason})
		}
		return ps
	}
	group.Go(func() {
		if err := kube.Run(ctx, targets); err != nil && ctx.Err() == nil {
			logger.Error("kubernetes discovery stopped", "err", err)
			stopAll()
		}
	})
	return nil
}

// restore brings the delta state back before the first scrape, then opens
// the spool. Restore waits while a previous agent on this node still holds
// the state directory; the endpoint already answers meanwhile (not ready).
func (a *agent) restore(ctx context.Context) error {
	if _, err := a.store.Restore(ctx); err != nil {
		return fmt.Errorf("--state-dir %s: %w", a.c.stateDir, err)
	}
	a.restored.Store(true)
	// The spool is under the state directory, whose lock Restore now holds.
	if a.client != nil && a.stateDir != "" && a.c.spoolBytes() > 0 {
		if err := a.client.OpenSpool(filepath.Join(a.stateDir, "spool")); err != nil {
			return fmt.Errorf("--state-dir %s: %w", a.c.stateDir, err)
		}
	}
	return nil
}

// scrape runs the scrape loops and the Datadog client until ctx ends, and
// returns once every loop has stopped, with a wait for the client's Run:
// that returns only after Drain (in shutdown) ended its last POSTs.
func (a *agent) scrape(ctx context.Context, targets <-chan []target.Target) (clientDone func()) {
	var wg sync.WaitGroup
	if a.client != nil {
		wg.Go(func() { a.client.Run(ctx) })
	}
	a.mgr.Run(ctx, targets) // returns after every loop stopped
	return wg.Wait
}

// shutdown writes the final checkpoint, sends what is left (the rest goes to
// the spool) and stops the endpoint, in that order, once nothing scrapes.
func (a *agent) shutdown(srv *http.Server, clientDone func()) {
	// The final checkpoint, now that nothing updates the state: the next
	// agent's first deltas start exactly where these left off. Before the
	// flush, which may wait for Datadog.
	if err := a.store.Close(); err != nil {
		a.logger.Error("final delta checkpoint failed; the next start falls back to the last periodic one", "err", err)
	}

	// Final flush with a fresh deadline: ctx is already cancelled. What is
	// not sent by then goes to the spool.
	sctx, cancel := context.WithTimeout(context.Background(), a.c.shutdownFlush)
	defer cancel()
	if a.client != nil {
		if err := a.client.Drain(sctx); err != nil {
			a.logger.Error("final flush incomplete", "err", err)
		}
	}
	clientDone() // Run returned once Drain had its last POSTs end
	if a.client != nil {
		if err := a.client.Close(); err != nil {
			a.logger.Error("closing the spool", "err", err)
		}
	}
	_ = srv.Shutdown(sctx)
}
