package scrapeloop

import (
	"fmt"
	"net/http"
	"os"
	"strings"
)

// fileAuthTransport sends "Authorization: <typ> <credentials>" with the
// credentials read from file on every request, as Prometheus' common/config
// reads a credentials_file (its FileSecret is read at each request): the
// kubelet rotates a projected service-account token (well before its hour
// is up), and one read when the loop starts would expire under a loop that
// runs for days. One small read a scrape is the price.
//
// The header is added here, on each hop, so net/http's rule that drops
// Authorization on a redirect to another host does not apply: RoundTrip
// applies one itself. Files a scrape class or AllowFileReferences named
// follow Prometheus' rule (the target's host or a subdomain of it, see
// crossHostRedirect); the agent's own token (own) goes only to the very host
// of the target's URL, which discovery has checked is this node's or the API
// server's, whatever port or path a redirect names.
type fileAuthTransport struct {
	typ, file string
	own       bool
	base      http.RoundTripper
}

func (t *fileAuthTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if crossHostRedirect(req) || (t.own && redirectedFromHost(req)) {
		return t.base.RoundTrip(req)
	}
	b, err := os.ReadFile(t.file)
	if err != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip closes the body, even on errors
		}
		return nil, fmt.Errorf("authorization credentials: %w", err)
	}
	r := req.Clone(req.Context()) // a RoundTripper must not modify the request
	r.Header.Set("Authorization", t.typ+" "+strings.TrimSpace(string(b)))
	return t.base.RoundTrip(r)
}

// redirectedFromHost says some hop of req's redirect chain, req included,
// names a host other than the first request's: not even a subdomain of it.
func redirectedFromHost(req *http.Request) bool {
	orig := req
	for orig.Response != nil && orig.Response.Request != nil {
		orig = orig.Response.Request
	}
	for r := req; r != orig; r = r.Response.Request {
		if !strings.EqualFold(r.URL.Hostname(), orig.URL.Hostname()) {
			return true
		}
	}
	return false
}
