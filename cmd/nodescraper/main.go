package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// main reads the configuration and runs the agent until the first SIGTERM or
// SIGINT; a second signal exits at once. Exit status: 2 for a bad
// configuration, 1 when the agent fails. "nodescraper prepare-state-dir"
// runs the init step of statedir.go instead.
func main() {
	if len(os.Args) > 1 && os.Args[1] == "prepare-state-dir" {
		os.Exit(prepareStateDir(os.Args[2:], os.Stdout, os.Stderr))
	}
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

// buildVersion is the version set at build time, else the module's.
func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// newLogger writes to w at --log-level in --log-format (both validated).
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
// exits at once, without the graceful shutdown. The function returned stops
// listening for signals and cancels the context.
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
