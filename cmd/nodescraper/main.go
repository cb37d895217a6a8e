package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/ddclient"
	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/informer"
	"github.com/nodescraper/nodescraper/internal/selfmetrics"
	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/scrapeloop"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	c, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodescraper:", err)
		os.Exit(2)
	}
	if c.showVersion {
		fmt.Println("nodescraper", buildVersion())
		return
	}
	logger := newLogger(c, os.Stderr)
	ctx, stop := signalContext()
	defer stop()
	if err := run(ctx, c, os.Stdout, logger, nil); err != nil {
		logger.Error("nodescraper stopped", "err", err)
		os.Exit(1)
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func newLogger(c *config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.logLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// signalContext is cancelled by the first SIGTERM or SIGINT; a second one
// exits at once.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
			return
		}
		<-ch
		fmt.Fprintln(os.Stderr, "nodescraper: second signal, exiting now")
		os.Exit(1)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

// run is the agent. It returns when ctx is cancelled and everything has shut
// down. ready, if not nil, receives the endpoint's address once it listens.
//
// Its components run under one group: discovery, the scrape manager, the
// delta store's checkpoints, the Datadog client and the endpoint each have one
// goroutine that run starts and waits for before it returns.
func run(ctx context.Context, c *config, stdout io.Writer, logger *slog.Logger, ready chan<- string) error {
	started := time.Now()
	// TYPE lines let a scraper of our own /metrics (this agent, in the demo)
	// tell counters from gauges.
	metrics.ExposeMetadata(true)
	logger.Info("nodescraper starting", "version", buildVersion(), "node", c.nodeName, "host", c.host(), "dry_run", c.dryRun)
	if lim, why := applyMemoryLimit(c.memoryLimit, os.Getenv, cgroupFiles); lim > 0 {
		logger.Info("Go memory limit set", "bytes", lim, "from", why)
	}
	stateDir := c.stateDir
	if c.dryRun {
		stateDir = "" // a dry run must not move the state the real agent continues from
	}
	store := deltastore.New(deltastore.Config{
		MaxSeries:          c.maxSeries,
		StaleAfter:         c.seriesStaleAfter,
		Dir:                stateDir,
		CheckpointInterval: c.checkpointInterval,
		MaxAge:             c.checkpointMaxAge,
		Logger:             logger,
	})
	sets := []*metrics.Set{store.Metrics()}
	help := []map[string]string{store.MetricsHelp()} // HELP text of the sets' metrics

	mapping := c.mapping()
	var (
		backend scrapeloop.Backend // Datadog, or the dry-run printer
		client  *ddclient.Client
	)
	if c.dryRun {
		backend = ddclient.NewPrinter(stdout, mapping)
	} else {
		var err error
		client, err = ddclient.New(ddclient.Config{
			URL:              c.apiURL(),
			APIKey:           c.apiKey,
			APIKeyFile:       c.apiKeyFileToWatch(),
			Mapping:          mapping,
			ServiceChecks:    c.serviceChecks,
			AppKey:           c.appKey,
			AppKeyFile:       c.appKeyFile,
			MetadataInterval: c.metadataInterval,
			Compression:      c.compression,
			FlushInterval:    c.flushInterval,
			MaxQueueBytes:    c.queueBytes(),
			SpoolMaxBytes:    c.spoolBytes(),
			SendConcurrency:  c.sendConcurrency,
			Logger:           logger,
		})
		if err != nil {
			return err
		}
		vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := client.Validate(vctx); err != nil {
			// Keep running: the key may be fixed through DD_API_KEY_FILE, and
			// points are held meanwhile. Readiness reports the problem.
			logger.Error("Datadog API key check failed", "err", err)
		}
		cancel()
		backend = client
		sets = append(sets, client.Metrics())
		help = append(help, client.MetricsHelp())
	}

	mgr := scrapeloop.NewManager(scrapeloop.Config{
		Store:         store,
		Backend:       backend,
		DefaultLimits: c.limits,
		Logger:        logger,
		// A longer interval would let the delta state expire between scrapes.
		MaxInterval: c.seriesStaleAfter / 2,
	})
	sets = append(sets, mgr.Metrics())
	help = append(help, mgr.MetricsHelp())

	var group sync.WaitGroup
	defer group.Wait()
	// Components stop when runCtx ends: the caller's cancellation, or a
	// component that fails.
	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()

	targets := make(chan []scrapeloop.Target, 1)
	var discoverySynced func() bool
	var problems func() []scrapeloop.Problem // rejected monitors, for the targets page
	if c.staticTargets != "" {
		static := metrics.NewSet()
		sets = append(sets, static)
		help = append(help, informer.StaticMetricsHelp())
		scfg := informer.StaticConfig{
			Metrics:  static,
			Path:     c.staticTargets,
			Defaults: relabel.Defaults{Interval: c.interval, Timeout: c.timeout},
			Template: scrapeloop.Target{HonorTimestamps: true},
			Logger:   logger,
		}
		if _, err := informer.LoadStatic(scfg); err != nil {
			return err
		}
		discoverySynced = func() bool { return true }
		group.Go(func() { informer.RunStatic(runCtx, scfg, targets) })
	} else {
		kube, err := newKubeDiscovery(c, logger)
		if err != nil {
			return err
		}
		sets = append(sets, kube.Metrics())
		help = append(help, kube.MetricsHelp())
		discoverySynced = kube.Synced
		problems = func() []scrapeloop.Problem {
			var ps []scrapeloop.Problem
			for _, r := range kube.Rejected() {
				ps = append(ps, scrapeloop.Problem{Object: fmt.Sprintf("%s %s/%s", r.Kind, r.Namespace, r.Name), Reason: r.Reason})
			}
			return ps
		}
		group.Go(func() {
			if err := kube.Run(runCtx, targets); err != nil && runCtx.Err() == nil {
				logger.Error("kubernetes discovery stopped", "err", err)
				stopAll()
			}
		})
	}
	for _, set := range sets {
		metrics.RegisterSet(set)
	}
	defer func() {
		for _, set := range sets {
			metrics.UnregisterSet(set, false)
		}
	}()

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		stopAll()
		return fmt.Errorf("--listen %s: %w", c.listen, err)
	}
	mux := http.NewServeMux()
	allHelp := selfmetrics.Merge(help...)
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = selfmetrics.WriteWithHelp(w, allHelp, func(w io.Writer) { metrics.WritePrometheus(w, true) })
	})
	mux.Handle("GET /targets", mgr.TargetsHandler(scrapeloop.PageInfo{
		Node: c.nodeName, Version: buildVersion(), Started: started, APIPath: "/api/v1/targets", Problems: problems,
	}))
	mux.Handle("GET /api/v1/targets", mgr.APITargetsHandler(problems))
	if c.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	var restored atomic.Bool
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !restored.Load():
			http.Error(w, "restoring the delta state", http.StatusServiceUnavailable)
		case !discoverySynced():
			http.Error(w, "discovery not synced", http.StatusServiceUnavailable)
		case client != nil && client.Forbidden():
			http.Error(w, "Datadog refused the API key", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	group.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("endpoint stopped", "err", err)
		}
	})
	defer srv.Close()
	logger.Info("endpoint listening", "addr", ln.Addr().String(), "paths", "/metrics /targets /api/v1/targets /healthz /readyz")
	if ready != nil {
		ready <- ln.Addr().String()
	}

	// The delta state comes back before the first scrape. Restore waits while
	// a previous agent on this node still holds the state directory; the
	// endpoint already answers meanwhile (not ready).
	if _, err := store.Restore(runCtx); err != nil {
		stopAll()
		return fmt.Errorf("--state-dir %s: %w", c.stateDir, err)
	}
	restored.Store(true)
	// The spool is under the state directory, whose lock Restore now holds.
	if client != nil && stateDir != "" && c.spoolBytes() > 0 {
		if err := client.OpenSpool(filepath.Join(stateDir, "spool")); err != nil {
			stopAll()
			return fmt.Errorf("--state-dir %s: %w", c.stateDir, err)
		}
	}
	group.Go(func() { store.Run(runCtx) })
	var clientDone sync.WaitGroup
	if client != nil {
		clientDone.Go(func() { client.Run(runCtx) })
	}
	mgr.Run(runCtx, targets) // returns after every loop stopped
	// The final checkpoint, now that nothing updates the state: the next
	// agent's first deltas start exactly where these left off. Before the
	// flush, which may wait for Datadog.
	if err := store.Close(); err != nil {
		logger.Error("final delta checkpoint failed; the next start falls back to the last periodic one", "err", err)
	}

	// Final flush with a fresh deadline: ctx is already cancelled. What is
	// not sent by then goes to the spool.
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownFlush)
	defer cancel()
	if client != nil {
		if err := client.Drain(sctx); err != nil {
			logger.Error("final flush incomplete", "err", err)
		}
		clientDone.Wait() // Run returned once Drain had its last POSTs end
		if err := client.Close(); err != nil {
			logger.Error("closing the spool", "err", err)
		}
	}
	_ = srv.Shutdown(sctx)
	stopAll()
	group.Wait()
	logger.Info("nodescraper stopped")
	return nil
}
