// What a failed scrape says, and to whom: the targets page and the logs
// quote what the target sent, briefly; Datadog gets the agent's own words.

package scrapeloop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
)

// quoteLimit bounds how many bytes of what a target sent an error quotes:
// enough to find the line, too little to carry a body (a redirected
// credentials page, a hostile label value) into a log or the targets page.
const quoteLimit = 64

// quoteShort quotes b's first quoteLimit bytes.
func quoteShort[T string | []byte](b T) string {
	if len(b) > quoteLimit {
		return strconv.Quote(string(b[:quoteLimit])) + "..."
	}
	return strconv.Quote(string(b))
}

// StatusError is a response other than 200 OK.
type StatusError struct {
	Code int
	// Status is the response's status line, quoted and cut short: its text
	// is the target's.
	Status string
}

func (e *StatusError) Error() string { return "server returned HTTP status " + e.Status }

func newStatusError(code int, status string) *StatusError {
	text := strconv.Itoa(code)
	if len(status) > len(text)+1 {
		text += " " + quoteShort(status[len(text)+1:])
	}
	return &StatusError{Code: code, Status: text}
}

// tokenError is an OAuth2 token fetch that failed; its text is the agent's,
// the token endpoint's answer shortened.
type tokenError struct {
	url  string
	code int // the token endpoint's HTTP status; 0 if it did not answer
	err  error
}

func (e *tokenError) Error() string {
	if e.code != 0 {
		return fmt.Sprintf("oauth2 token fetch from %s: HTTP status %d: %v", e.url, e.code, e.err)
	}
	return fmt.Sprintf("oauth2 token fetch from %s: %v", e.url, e.err)
}

func (e *tokenError) Unwrap() error { return e.err }

// PublicError says why a scrape failed in the agent's own words, without
// anything the target (or a redirect, or a token endpoint) wrote: the text
// that may leave the node, such as the message of Datadog's service check.
// The full error, its quotes short, stays on the node (logs, targets page).
func PublicError(err error) string {
	var (
		ae *AddressError
		se *StatusError
		pe *exposition.ParseError
		te *tokenError
		ce *tls.CertificateVerificationError
		ue x509.UnknownAuthorityError
		he x509.HostnameError
		de *net.DNSError
		ne net.Error
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ae):
		return "connection refused by the agent: " + ae.Why
	case errors.As(err, &te):
		if te.code != 0 {
			return "OAuth2 token fetch failed: HTTP status " + strconv.Itoa(te.code)
		}
		return "OAuth2 token fetch failed"
	case errors.As(err, &se):
		// The standard reason phrase, not the target's.
		return strings.TrimSpace("server returned HTTP status " + strconv.Itoa(se.Code) + " " + http.StatusText(se.Code))
	case errors.As(err, &pe):
		return fmt.Sprintf("parse error: line %d col %d: %s", pe.Line, pe.Col, pe.Msg)
	}
	for _, e := range []error{errBodySizeLimit, errSampleLimit, errLabelLimit, errLabelNameLimit, errLabelValueLimit, errIncomplete, errBytesInFlight} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "scrape timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.As(err, &de):
		return "DNS lookup failed"
	case errors.As(err, &ce), errors.As(err, &ue), errors.As(err, &he):
		return "TLS certificate verification failed"
	}
	return "scrape failed (the agent's targets page has the error)"
}
