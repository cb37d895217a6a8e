package fakeintake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is an Intake listening on a TCP address.
type Server struct {
	*Intake
	// URL is the base URL to give a sender, e.g. "http://127.0.0.1:40123".
	URL string

	srv      *http.Server
	served   chan error
	waitOnce sync.Once
	waitErr  error
}

// Start listens on addr ("" means 127.0.0.1 on a free port) and serves a new
// Intake built from cfg until Close or Shutdown.
func Start(addr string, cfg Config) (*Server, error) {
	in, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("intake: listen on %s: %w", addr, err)
	}
	s := &Server{
		Intake: in,
		URL:    "http://" + ln.Addr().String(),
		srv: &http.Server{
			Handler: in,
			// Bounds what a stuck or hostile client can hold; bodies are
			// bounded by the size limits.
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(in.log.Handler(), slog.LevelWarn),
		},
		served: make(chan error, 1),
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// Close closes the listener and every connection, ends injected hangs and
// waits until no request is in progress. Stored data stays queryable.
func (s *Server) Close() error {
	err := s.srv.Close()
	s.Intake.Close()
	return errors.Join(err, s.wait())
}

// Shutdown stops accepting, waits for requests in progress until ctx ends
// (hangs are ended first), then closes.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Intake.Close() // ends hangs; requests in progress finish
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.srv.Close())
	}
	return errors.Join(err, s.wait())
}

// wait returns Serve's error; safe to call more than once.
func (s *Server) wait() error {
	s.waitOnce.Do(func() {
		if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.waitErr = fmt.Errorf("intake: serve: %w", err)
		}
	})
	return s.waitErr
}
