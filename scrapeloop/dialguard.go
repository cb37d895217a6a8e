// The dial-time address check: which hosts a target's connections may
// reach, checked when each connection is opened.

package scrapeloop

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/nodescraper/nodescraper/relabel/target"
)

// reach says what a target's connections may reach. A monitor chooses the
// target's address, and the target chooses where its redirects point, so
// discovery's check of the relabeled address is not enough: every
// connection is checked when it is opened, after DNS (a name that resolves
// to another address, or resolves differently the second time, gains
// nothing), for the target, each redirect hop and the OAuth2 token
// endpoint. A proxy, which then opens the connection itself, is dialed only
// when the operator allowed it, and each hop's URL is checked before the
// request goes through it.
type reach struct {
	// node holds the addresses a node target may be reached at; nil: no
	// check (--allow-other-addresses, file targets).
	node *target.NodeAddrs
	// only is the one host (name or address, as in the URL) a connection
	// may go to: a cluster target's endpoint, an OAuth2 token endpoint.
	// Checked before DNS: the endpoint is what was discovered or allowed.
	only string
	// via are the hosts of the proxies the transport may dial.
	via []string
}

func (r *reach) on() bool { return r.node != nil || r.only != "" }

// AddressError is a connection the agent refused to open.
type AddressError struct {
	Host string // as the URL or the redirect gave it
	Addr string // the address it resolved to, when checked after DNS
	Why  string
}

func (e *AddressError) Error() string {
	at := e.Host
	if e.Addr != "" && e.Addr != e.Host {
		at += " (" + e.Addr + ")"
	}
	return "connection to " + at + " refused: " + e.Why
}

const (
	whyNotNode  = "not an address of this node or of its pods (--allow-other-addresses)"
	whyNotOnly  = "the target may only be reached at "
	dialTimeout = 30 * time.Second // net/http's DefaultTransport's
)

func (r *reach) checkIP(host string, ip netip.Addr) error {
	if r.node != nil && !r.node.Has(ip) {
		return &AddressError{Host: host, Addr: ip.String(), Why: whyNotNode}
	}
	return nil
}

// checkHost checks a request's host before it is sent through a proxy (or
// before DNS, for only).
func (r *reach) checkHost(ctx context.Context, host string) error {
	if r.only != "" {
		if !strings.EqualFold(host, r.only) {
			return &AddressError{Host: host, Why: whyNotOnly + r.only}
		}
		return nil
	}
	if r.node == nil {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return r.checkIP(host, ip)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return err
	}
	for _, ip := range ips {
		if err := r.checkIP(host, ip); err != nil {
			return err
		}
	}
	return nil
}

// dialContext returns the DialContext of a transport whose connections
// have reach r: a proxy of via is dialed as it is; any other host only
// if it is r.only, and its address, after DNS, only if it is in r.node.
func (r *reach) dialContext() func(ctx context.Context, network, addr string) (net.Conn, error) {
	plain := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	checked := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		for _, v := range r.via {
			if strings.EqualFold(host, v) {
				return plain.DialContext(ctx, network, addr)
			}
		}
		if r.only != "" {
			if !strings.EqualFold(host, r.only) {
				return nil, &AddressError{Host: host, Why: whyNotOnly + r.only}
			}
			return plain.DialContext(ctx, network, addr)
		}
		if r.node == nil {
			return plain.DialContext(ctx, network, addr)
		}
		// Control sees each address the name resolved to, just before the
		// connect: the check is on what is dialed, not on what a lookup
		// said a moment earlier.
		d := *checked
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, err)
			}
			return r.checkIP(host, ap.Addr())
		}
		return d.DialContext(ctx, network, addr)
	}
}

// guard sets t's DialContext to r's check; with a proxy, each request's
// host is also checked by the returned RoundTripper before it goes.
func (r *reach) guard(t *http.Transport) http.RoundTripper {
	if !r.on() {
		return t
	}
	t.DialContext = r.dialContext()
	if len(r.via) == 0 {
		return t
	}
	return &hopGuard{r: r, base: t}
}

// hopGuard checks the host of each request, the first and every redirect
// hop, before a proxy connects to it in the agent's name.
type hopGuard struct {
	r    *reach
	base http.RoundTripper
}

func (g *hopGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := g.r.checkHost(req.Context(), req.URL.Hostname()); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return g.base.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach base.
func (g *hopGuard) CloseIdleConnections() {
	if c, ok := g.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// proxyHosts are the hosts of the proxies p sends requests through: its
// URL's, or with proxyFromEnvironment those of the agent's environment,
// which the operator set.
func proxyHosts(p *url.URL, fromEnv bool) []string {
	if p != nil {
		return []string{p.Hostname()}
	}
	if !fromEnv {
		return nil
	}
	var out []string
	for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
		v := os.Getenv(k)
		if v == "" {
			continue
		}
		if !strings.Contains(v, "://") {
			v = "http://" + v // as net/http reads it
		}
		if u, err := url.Parse(v); err == nil && u.Hostname() != "" {
			out = append(out, u.Hostname())
		}
	}
	return out
}
