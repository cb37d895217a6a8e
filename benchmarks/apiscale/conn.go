package apiscale

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
)

// Counter counts the bytes of one agent's connections to the API server, as
// they cross the socket (TLS records, HTTP/2 frames, compressed bodies).
type Counter struct {
	In, Out atomic.Int64
	Dials   atomic.Int64
}

type countingConn struct {
	net.Conn
	c *Counter
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.c.In.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.c.Out.Add(int64(n))
	return n, err
}

// agentConfig returns a client configuration for one agent: its own TLS
// transport, dialling through a counting connection. client-go caches
// transports by TLS settings (transport/cache.go, tlsConfigKey); a Dial
// function gets a fresh DialHolder in every TransportConfig, so the
// transport built here is never shared with another agent. The returned
// configuration carries that transport (and no TLS settings), so every
// client built from it — informer.Kube builds a Kubernetes and a monitoring
// client — shares this one transport and HTTP/2 connection, as the agent's
// clients share the one cached transport in production.
// closeIdle closes the transport's idle connections once the agent stopped.
func agentConfig(admin *rest.Config, userAgent string, c *Counter) (cfg *rest.Config, closeIdle func(), err error) {
	dialer := &net.Dialer{}
	tc := rest.CopyConfig(admin)
	tc.QPS, tc.Burst = 0, 0 // client-go defaults, as the agent runs
	tc.UserAgent = userAgent
	tc.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c.Dials.Add(1)
		return countingConn{conn, c}, nil
	}
	rt, err := rest.TransportFor(tc)
	if err != nil {
		return nil, nil, fmt.Errorf("agent %s transport: %w", userAgent, err)
	}
	return &rest.Config{Host: admin.Host, UserAgent: userAgent, Transport: rt}, func() { utilnet.CloseIdleConnectionsFor(rt) }, nil
}
