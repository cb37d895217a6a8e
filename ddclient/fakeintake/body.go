package fakeintake

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
	"github.com/klauspost/compress/zstd"
)

// received is one body that passed the size and encoding checks.
type received struct {
	encoding     string // as counted in Stats.Encodings: "identity", "gzip", ...
	version      string // as counted in Stats.SeriesVersions; "" is SeriesV2
	compressed   int64
	uncompressed int64
	body         []byte
	payload      *datadogV2.MetricPayload
}

// zstdMinWindow is the smallest window a zstd decoder must accept: the zstd
// spec (RFC 8878 §3.1.1.1.2) recommends supporting 8 MiB, and Go's and the
// reference encoders declare up to that even for small payloads.
const zstdMinWindow = 8 << 20

// readBody reads the body as sent (at most MaxCompressedBytes) and decodes it
// through a limited reader, so a small body that inflates to gigabytes costs
// at most MaxUncompressedBytes+1 bytes of output before it is refused.
func (in *Intake) readBody(r *http.Request) (*received, *rejection) {
	if len(r.Header.Values("Content-Encoding")) > 1 {
		return nil, &rejection{http.StatusBadRequest, ReasonContentEncoding,
			"several Content-Encoding headers: send one of identity, gzip, deflate, zstd, zstd1"}
	}
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	if enc == "" {
		enc = "identity"
	}
	switch enc {
	case "identity", "gzip", "deflate", "zstd", "zstd1":
	default:
		// 400 rather than 415: the sender must change its code, and a 415 would
		// be retried by a forwarder that retries every status but 400/403/413.
		return nil, &rejection{http.StatusBadRequest, ReasonContentEncoding,
			fmt.Sprintf("Content-Encoding %q is not supported: send one of identity, gzip, deflate (zlib), zstd, zstd1", enc)}
	}
	maxC, maxU := in.cfg.MaxCompressedBytes, in.cfg.MaxUncompressedBytes
	if r.ContentLength > maxC {
		return nil, &rejection{http.StatusRequestEntityTooLarge, ReasonTooLargeCompressed,
			fmt.Sprintf("payload of %d bytes is over the limit of %d bytes", r.ContentLength, maxC)}
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxC+1))
	if err != nil {
		return nil, &rejection{http.StatusBadRequest, ReasonReadBody, fmt.Sprintf("read body: %v", err)}
	}
	if int64(len(raw)) > maxC {
		return nil, &rejection{http.StatusRequestEntityTooLarge, ReasonTooLargeCompressed,
			fmt.Sprintf("payload is over the limit of %d bytes (chunked body)", maxC)}
	}
	body, err := in.decompress(enc, raw, maxU+1)
	if err != nil {
		return nil, &rejection{http.StatusBadRequest, ReasonBadCompression,
			fmt.Sprintf("body is not valid %s: %v", enc, err)}
	}
	if int64(len(body)) > maxU {
		return nil, &rejection{http.StatusRequestEntityTooLarge, ReasonTooLargeUncompressed,
			fmt.Sprintf("decompressed payload is over the limit of %d bytes (%d compressed bytes)", maxU, len(raw))}
	}
	return &received{encoding: enc, compressed: int64(len(raw)), uncompressed: int64(len(body)), body: body}, nil
}

// decompress decodes raw, stopping after limit bytes of output. A result of
// exactly limit bytes means the body is larger than the caller accepts.
func (in *Intake) decompress(enc string, raw []byte, limit int64) ([]byte, error) {
	var zr io.Reader
	switch enc {
	case "identity":
		if int64(len(raw)) > limit {
			return raw[:limit], nil
		}
		return raw, nil
	case "gzip":
		gr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		defer gr.Close()
		zr = gr
	case "deflate":
		// HTTP's "deflate" is the zlib format (RFC 9110 §8.4.1.2), which is
		// what Datadog's clients send.
		fr, err := zlib.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		defer fr.Close()
		zr = fr
	case "zstd", "zstd1":
		window := max(uint64(in.cfg.MaxUncompressedBytes), zstdMinWindow)
		// Concurrency 1 decodes in the caller's goroutine: nothing to leak.
		d, err := zstd.NewReader(bytes.NewReader(raw), zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(window))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		zr = d
	}
	out, err := io.ReadAll(io.LimitReader(zr, limit))
	if err != nil {
		return nil, err
	}
	return out, nil
}
