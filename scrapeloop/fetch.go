package scrapeloop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
)

// fetch reads the response body into buf and returns its content type. A
// body that provably is not the whole exposition fails the scrape (see
// incomplete): taken as a short body it would pass for one whose missing
// series vanished, and a value cut within its line for a counter reset.
func (l *loop) fetch(ctx context.Context, buf *[]byte) (string, error) {
	deadline := time.Now().Add(l.target.Timeout)
	req := l.req.WithContext(ctx)
	resp, err := l.client.Do(req)
	if err != nil {
		return "", err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		l.body = bodyReader{} // the response is not kept until the next scrape
	}()
	if resp.StatusCode != http.StatusOK {
		return "", newStatusError(resp.StatusCode, resp.Status)
	}
	// The body goes through l.body, which keeps the transport's own error:
	// a cut connection and a broken gzip stream both end in an unexpected
	// EOF, and only the transport's tells them apart.
	l.body = bodyReader{r: resp.Body}
	var r io.Reader = &l.body
	gzipped := resp.Header.Get("Content-Encoding") == "gzip"
	if gzipped {
		if l.gz == nil {
			l.gz, err = kgzip.NewReader(&l.body)
		} else {
			err = l.gz.Reset(&l.body)
		}
		if err != nil {
			return "", l.readFailed(ctx, resp, fmt.Errorf("gzip: %w", err))
		}
		r = l.gz
	}
	limit := l.limits.BodySize
	if err := l.checkDeclared(resp, gzipped); err != nil {
		return "", err
	}
	// The body is read as its bytes are acquired from the node's bound; a
	// declared length is no reason to take (or allocate) them before they
	// come: a target may declare a GiB and send a byte a second.
	l.meter = meteredBody{r: r, budget: l.cfg.inflight, ctx: ctx, deadline: deadline, max: limit + 1}
	if err := l.sizeBuffer(buf); err != nil {
		return "", fmt.Errorf("read body: %w", err)
	}
	n, err := l.cfg.bodies.readBody(buf, &l.meter, limit)
	if errors.Is(err, errBytesInFlight) {
		return "", fmt.Errorf("read body: %w", err)
	}
	if err != nil {
		return "", l.readFailed(ctx, resp, fmt.Errorf("read body: %w", err))
	}
	l.meter.trim(int64(cap(*buf)))
	if n > limit {
		return "", fmt.Errorf("body larger than %d bytes: %w", limit, errBodySizeLimit)
	}
	ct := resp.Header.Get("Content-Type")
	// Framing ends a body where its sender meant it to end: a declared
	// length, the last chunk, an HTTP/2 stream's end, gzip's trailer.
	framed := resp.ProtoMajor != 1 || resp.ContentLength >= 0 || isChunked(resp) || gzipped
	if reason, why := incomplete(*buf, exposition.FormatFor(ct), framed); reason != "" {
		l.countIncomplete(reason)
		return "", fmt.Errorf("%w (%s): %s", errIncomplete, reason, why)
	}
	l.cfg.m.bodyBytes.Add(int(n))
	return ct, nil
}

// sizeBuffer takes the bytes of a buffer sized from the target's previous
// body (an eighth more: a body grows), then the buffer: the memory a scrape
// holds is what the bound counts, from the start. A body larger than its
// buffer grows in steps as it is read (meteredBody); a smaller one leaves
// the rest of the buffer's bytes held until the scrape ends.
func (l *loop) sizeBuffer(buf *[]byte) error {
	want := min(int64(l.bodySize+l.bodySize/8), l.meter.max, l.cfg.inflight.size)
	if want <= int64(cap(*buf)) {
		return nil
	}
	if err := l.meter.reserve(want); err != nil {
		return err
	}
	nb := l.cfg.bodies.get(int(want))
	*nb, *buf = *buf, *nb // buf stays the caller's; the small one goes back
	l.cfg.bodies.put(nb)
	return nil
}

// checkDeclared fails a scrape at once on the length its response declares:
// past the body size limit, or past the node's whole bound of bytes in
// flight, the body cannot be scraped (were it shorter than declared, it would
// be an incomplete one), so none of it is read. A gzipped body's length is
// its compressed size: it tells nothing.
func (l *loop) checkDeclared(resp *http.Response, gzipped bool) error {
	n := resp.ContentLength
	switch {
	case gzipped || n < 0:
	case n > l.limits.BodySize:
		return fmt.Errorf("body larger than %d bytes: %w", l.limits.BodySize, errBodySizeLimit)
	case n > l.cfg.inflight.size:
		l.cfg.inflight.failOversized.Inc()
		return fmt.Errorf("body declares %d bytes (Content-Length), more than the node's %d bytes in flight: %w", n, l.cfg.inflight.size, errBytesInFlight)
	}
	return nil
}

// errIncomplete marks a body that provably is not the whole exposition.
var errIncomplete = errors.New("incomplete body")

// Why a body is incomplete: the label values of
// nodescraper_scrape_incomplete_bodies_total.
const (
	incompleteLength  = "content_length"    // the connection ended before the declared Content-Length
	incompleteChunked = "chunked"           // a chunked stream ended without its last chunk
	incompleteStream  = "truncated"         // another framing (HTTP/2) ended early
	incompleteGzip    = "gzip"              // the gzip stream is cut or damaged, its framing intact
	incompleteRead    = "read_error"        // the read failed otherwise (a reset, the scrape timeout)
	incompleteEOF     = "no_eof"            // OpenMetrics without its final # EOF line
	incompleteLine    = "unterminated_line" // an unframed text body that ends within a line
)

// bodyReader passes a response body through and keeps its first error other
// than io.EOF.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func isChunked(resp *http.Response) bool {
	return len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
}

// readFailed names and counts why reading the body failed.
func (l *loop) readFailed(ctx context.Context, resp *http.Response, err error) error {
	if ctx.Err() != nil {
		return err // shutting down: not the target's fault, nor counted
	}
	te := l.body.err
	reason := incompleteRead
	switch {
	case te == nil:
		reason = incompleteGzip // the transport delivered all it had
	case errors.Is(te, io.ErrUnexpectedEOF) && resp.ContentLength >= 0:
		reason = incompleteLength
		err = fmt.Errorf("connection ended before the %d bytes of its Content-Length: %w", resp.ContentLength, err)
	case errors.Is(te, io.ErrUnexpectedEOF) && isChunked(resp):
		reason = incompleteChunked
		err = fmt.Errorf("chunked body ended without its last chunk: %w", err)
	case errors.Is(te, io.ErrUnexpectedEOF):
		reason = incompleteStream
	}
	l.countIncomplete(reason)
	return fmt.Errorf("%w (%s): %w", errIncomplete, reason, err)
}

func (l *loop) countIncomplete(reason string) {
	l.cfg.m.set.GetOrCreateCounter(`nodescraper_scrape_incomplete_bodies_total{reason="` + reason + `"}`).Inc()
}

var eofLine = []byte("# EOF")

// incomplete tells a whole body from one provably cut short, where the
// transport could not: OpenMetrics ends with "# EOF", and a text body whose
// connection's end was its only end (no framing) and that ends within a line
// was cut there, its last value perhaps within its digits. A text body cut
// at a line boundary cannot be told from a whole one; the delta state copes
// with it (a series missing from a scrape keeps its state).
func incomplete(body []byte, f exposition.Format, framed bool) (reason, why string) {
	switch {
	case f == exposition.FormatOpenMetrics:
		b := bytes.TrimSuffix(body, []byte{'\n'})
		if !bytes.HasSuffix(b, eofLine) || (len(b) > len(eofLine) && b[len(b)-len(eofLine)-1] != '\n') {
			return incompleteEOF, "OpenMetrics body does not end with # EOF"
		}
	case !framed && len(body) > 0 && body[len(body)-1] != '\n':
		return incompleteLine, "body without Content-Length or chunked framing ends within a line"
	}
	return "", ""
}
