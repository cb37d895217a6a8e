package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/internal/kubeauth"
	"github.com/nodescraper/nodescraper/internal/selfmetrics"
	"github.com/nodescraper/nodescraper/scrapeloop"
	"k8s.io/client-go/kubernetes"
)

// Who may read the endpoint's private paths (--endpoint-access): /metrics,
// /targets, /api/v1/targets and pprof show every namespace's targets, their
// labels and errors. /healthz and /readyz are open in every mode: the
// kubelet probes them on the pod's address.
const (
	// accessLocalhost: only connections to localhost (127.0.0.1 or ::1)
	// from a loopback address. --listen's own connections are checked one
	// by one (a wildcard --listen takes local ones too, e.g. kubectl
	// port-forward's); when --listen is another IP, a second listener on
	// 127.0.0.1 serves them.
	accessLocalhost = "localhost"
	// accessKubernetes: a bearer token that a TokenReview authenticates and
	// a SubjectAccessReview allows to get the path (a non-resource URL), as
	// kube-rbac-proxy does.
	accessKubernetes = "kubernetes"
	// accessOpen: anyone who reaches --listen.
	accessOpen = "open"
)

// validateEndpoint checks --endpoint-access and --local-listen.
func (c *config) validateEndpoint() error {
	switch c.endpointAccess {
	case accessLocalhost, accessKubernetes, accessOpen:
	default:
		return fmt.Errorf("--endpoint-access %q: want localhost, kubernetes or open", c.endpointAccess)
	}
	if c.localListen != "" {
		ap, err := netip.ParseAddrPort(c.localListen)
		if err != nil || !isLocalhost(ap.Addr()) {
			return fmt.Errorf("--local-listen %q: want 127.0.0.1 or [::1] and a port, e.g. 127.0.0.1:9105", c.localListen)
		}
	}
	return nil
}

// serve starts the node-local endpoint in group and sends --listen's bound
// address to ready, if not nil.
func (a *agent) serve(group *sync.WaitGroup, ready chan<- string) (*http.Server, error) {
	guard, err := a.accessGuard()
	if err != nil {
		return nil, err
	}
	lns, err := a.c.listeners()
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: a.endpoint(guard), ReadHeaderTimeout: 10 * time.Second}
	addrs := make([]string, len(lns))
	for i, ln := range lns {
		addrs[i] = ln.Addr().String()
		group.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.logger.Error("endpoint stopped", "addr", ln.Addr().String(), "err", err)
			}
		})
	}
	a.logger.Info("endpoint listening", "addr", addrs, "access", a.c.endpointAccess,
		"open_paths", "/healthz /readyz", "private_paths", "/metrics /targets /api/v1/targets")
	if ready != nil {
		ready <- addrs[0]
	}
	return srv, nil
}

// listeners opens --listen and, in localhost mode, the loopback listener
// beside it: --local-listen when given, else 127.0.0.1:<port of --listen>
// when --listen is bound to another IP than localhost or the wildcard (with
// hostNetwork, the node's).
func (c *config) listeners() ([]net.Listener, error) {
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", c.listen, err)
	}
	if c.endpointAccess != accessLocalhost {
		return []net.Listener{ln}, nil
	}
	local := c.localListen
	if bound, ok := ln.Addr().(*net.TCPAddr); ok && local == "" {
		ip := bound.AddrPort().Addr().Unmap()
		if isLocalhost(ip) || ip.IsUnspecified() {
			return []net.Listener{ln}, nil
		}
		local = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), bound.AddrPort().Port()).String()
	}
	lo, err := net.Listen("tcp", local)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("--local-listen %s (--endpoint-access localhost): %w", local, err)
	}
	return []net.Listener{ln, lo}, nil
}

// accessGuard wraps the private paths as --endpoint-access says.
func (a *agent) accessGuard() (func(http.Handler) http.Handler, error) {
	switch a.c.endpointAccess {
	case accessOpen:
		return func(h http.Handler) http.Handler { return h }, nil
	case accessKubernetes:
		rc, err := a.c.restConfig()
		if err != nil {
			return nil, fmt.Errorf("--endpoint-access kubernetes: %w", err)
		}
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, fmt.Errorf("--endpoint-access kubernetes: %w", err)
		}
		return kubeauth.New(kubeauth.Config{Client: client, Path: authzPath, Logger: a.logger}).Wrap, nil
	}
	return loopbackOnly, nil
}

// authzPath is the non-resource URL a request is authorized as: its path,
// but /api/v1/targets as /targets, the page showing the same. The API
// server's default roles (system:discovery) grant /api/* to every
// authenticated user.
func authzPath(r *http.Request) string {
	if r.URL.Path == "/api/v1/targets" {
		return "/targets"
	}
	return r.URL.Path
}

// loopbackOnly answers 404 to a connection that did not arrive on localhost
// from a loopback address. A packet to 127.0.0.1 from another host or pod
// is dropped as martian, unless the node routes it (route_localnet, which
// kube-proxy once set: CVE-2020-8558); its source address is not loopback
// then, so both ends are checked.
func loopbackOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
		remote, err := netip.ParseAddrPort(r.RemoteAddr)
		if local == nil || !isLocalhost(local.AddrPort().Addr()) || err != nil || !remote.Addr().Unmap().IsLoopback() {
			http.Error(w, "404 page not found (this path is served on localhost only: --endpoint-access)", http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isLocalhost reports whether a is 127.0.0.1 or ::1: the rest of
// 127.0.0.0/8 is loopback too, but no one's "localhost" (tests use it for
// other hosts).
func isLocalhost(a netip.Addr) bool {
	a = a.Unmap()
	return a == netip.AddrFrom4([4]byte{127, 0, 0, 1}) || a == netip.IPv6Loopback()
}

// endpoint is the node-local endpoint's handler: health and readiness for
// anyone; the agent's own metrics, the targets page and its API, and pprof
// if asked, behind guard.
func (a *agent) endpoint(guard func(http.Handler) http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", guard(a.privateEndpoint()))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !a.restored.Load():
			http.Error(w, "restoring the delta state", http.StatusServiceUnavailable)
		case !a.discoverySynced():
			http.Error(w, "discovery not synced", http.StatusServiceUnavailable)
		case a.client != nil && a.client.Forbidden():
			http.Error(w, "Datadog refused the API key", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	return mux
}

// privateEndpoint serves what shows other tenants' targets.
func (a *agent) privateEndpoint() http.Handler {
	c := a.c
	mux := http.NewServeMux()
	allHelp := selfmetrics.Merge(a.help...)
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = selfmetrics.WriteWithHelp(w, allHelp, func(w io.Writer) { metrics.WritePrometheus(w, true) })
	})
	mux.Handle("GET /targets", a.mgr.TargetsHandler(scrapeloop.PageInfo{
		Node: c.nodeName, Version: buildVersion(), Started: a.started, APIPath: "/api/v1/targets", Problems: a.problems,
	}))
	mux.Handle("GET /api/v1/targets", a.mgr.APITargetsHandler(a.problems))
	if c.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
