// Command ddintake runs the strict stand-in Datadog metrics intake
// (package ddclient/fakeintake) and prints a live summary of what arrives.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
)

// defaultListen is loopback only: the stand-in is for one machine's demos
// and tests. 8129 sits beside the Datadog Agent's 8125 (DogStatsD) and 8126
// (APM) without taking either.
const defaultListen = "127.0.0.1:8129"

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel() // first signal: shut down cleanly
		<-sigs
		fmt.Fprintln(os.Stderr, "ddintake: second signal, exiting now")
		os.Exit(2)
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

const usageText = `ddintake is a strict stand-in for Datadog's metrics intake, for demos and tests
without a Datadog account. It serves POST /api/v2/series and GET /api/v1/validate,
checks what Datadog checks (DD-API-KEY, Content-Encoding gzip/deflate/zstd/zstd1,
512,000 bytes compressed and 5,242,880 bytes decoded, points at most 1h old or 10m
ahead, the datadog-api-client-go v2 MetricPayload model), answers 202 or Datadog's
error, and prints a summary of what arrived every -summary-interval.

Usage:
  DD_API_KEY=<any string> ddintake [flags]

Then send it series with the same key, for example:
  curl -i http://127.0.0.1:8129/api/v2/series -H 'DD-API-KEY: <key>' \
    -H 'Content-Type: application/json' \
    -d '{"series":[{"metric":"demo.up","type":3,"points":[{"timestamp":'$(date +%s)',"value":1}]}]}'
and point nodescraper at http://127.0.0.1:8129 instead of a Datadog site.

Refused requests are logged on stderr with the reason; the summary lists the last ones.

Flags:
`

type options struct {
	listen          string
	apiKeys         string
	summaryInterval time.Duration
	maxAge          time.Duration
	maxFuture       time.Duration
	allowNoInterval bool
	allowUnknown    bool
	maxStoredSeries int
	faults          string
	logLevel        string
}

func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("ddintake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = io.WriteString(stderr, usageText)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.listen, "listen", defaultListen, "address to listen on; loopback by default, anything else exposes the intake to the network")
	fs.StringVar(&o.apiKeys, "api-key", "", "accepted API key(s), comma-separated; when unset, $DD_API_KEY")
	fs.DurationVar(&o.summaryInterval, "summary-interval", 5*time.Second, "how often to print a summary of what arrived (0: only at exit)")
	fs.DurationVar(&o.maxAge, "max-age", fakeintake.DefaultMaxAge, "refuse points older than this (Datadog: 1h)")
	fs.DurationVar(&o.maxFuture, "max-future", fakeintake.DefaultMaxFuture, "refuse points further ahead than this (Datadog: 10m)")
	fs.BoolVar(&o.allowNoInterval, "allow-missing-interval", false, "accept count/rate series without interval (Datadog does; refused by default as a sender bug)")
	fs.BoolVar(&o.allowUnknown, "allow-unknown-fields", false, "accept JSON fields the model does not know (Datadog ignores them; refused by default)")
	fs.IntVar(&o.maxStoredSeries, "max-stored-series", 100_000, "series kept for queries before the oldest are dropped; bounds memory (counts are kept)")
	fs.StringVar(&o.faults, "faults", "", "answers for the first requests, comma-separated: a status (429, 500, 503, 408...) or hang:<duration>; e.g. 429,500,hang:30s")
	fs.StringVar(&o.logLevel, "log-level", "info", "stderr log level: debug (every payload), info, warn (refusals), error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: ddintake takes only flags (see -help)", fs.Arg(0))
	}
	if o.apiKeys == "" {
		o.apiKeys = getenv("DD_API_KEY") // read after parsing so -help never prints a key
	}
	if strings.TrimSpace(o.apiKeys) == "" {
		return nil, errors.New("-api-key: no API key: set -api-key or DD_API_KEY to any string, and give the sender the same")
	}
	if o.summaryInterval < 0 {
		return nil, fmt.Errorf("-summary-interval %s: must not be negative", o.summaryInterval)
	}
	return o, nil
}

// parseFaults reads the -faults list.
func parseFaults(s string) ([]fakeintake.Fault, error) {
	var out []fakeintake.Fault
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if d, ok := strings.CutPrefix(item, "hang:"); ok {
			dur, err := time.ParseDuration(d)
			if err != nil || dur <= 0 {
				return nil, fmt.Errorf("-faults: %q: want hang:<positive duration> such as hang:30s", item)
			}
			out = append(out, fakeintake.Fault{Delay: dur})
			continue
		}
		code, err := strconv.Atoi(item)
		if err != nil || code < 100 || code > 599 {
			return nil, fmt.Errorf("-faults: %q: want an HTTP status such as 429 or hang:<duration>", item)
		}
		out = append(out, fakeintake.Fault{Status: code})
	}
	return out, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("-log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	o, err := parseFlags(args, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "ddintake:", err)
		return 2
	}
	faults, err := parseFaults(o.faults)
	if err != nil {
		fmt.Fprintln(stderr, "ddintake:", err)
		return 2
	}
	level, err := parseLevel(o.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "ddintake:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var keys []string
	for k := range strings.SplitSeq(o.apiKeys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	srv, err := fakeintake.Start(o.listen, fakeintake.Config{
		APIKeys:              keys,
		Logger:               log,
		MaxAge:               o.maxAge,
		MaxFuture:            o.maxFuture,
		AllowMissingInterval: o.allowNoInterval,
		AllowUnknownFields:   o.allowUnknown,
		MaxStoredSeries:      o.maxStoredSeries,
	})
	if err != nil {
		fmt.Fprintln(stderr, "ddintake:", err)
		return 1
	}
	if host, _, err := net.SplitHostPort(o.listen); err == nil {
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			log.Warn("listening beyond loopback: anyone who can reach this address and knows a key can post", "listen", o.listen)
		}
	}
	srv.InjectFaults(faults...)
	fmt.Fprintf(stdout, "ddintake: listening on %s (POST %s, GET %s); %d API key(s); Ctrl-C stops\n",
		srv.URL, fakeintake.SeriesPath, fakeintake.ValidatePath, len(keys))

	sum := &summarizer{out: stdout, in: srv.Intake}
	var tick <-chan time.Time
	if o.summaryInterval > 0 {
		t := time.NewTicker(o.summaryInterval)
		defer t.Stop()
		tick = t.C
	}
loop:
	for {
		select {
		case <-tick:
			sum.print(time.Now())
		case <-ctx.Done():
			break loop
		}
	}
	// The serving context is gone: give requests in progress a fresh deadline.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	fmt.Fprintln(stdout, "ddintake: stopped; totals:")
	st := srv.Stats()
	fmt.Fprint(stdout, formatSummary(time.Now(), fakeintake.Stats{}, st, srv.TopMetrics(topN), 0, false))
	if err != nil {
		fmt.Fprintln(stderr, "ddintake: shutdown:", err)
		return 1
	}
	return 0
}
