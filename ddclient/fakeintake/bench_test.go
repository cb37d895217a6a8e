package fakeintake

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// benchPayload is a payload of n count series shaped like the agent's, with
// ten tags each.
func benchPayload(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"series":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"metric":"bench.metric_%d.count","type":1,"interval":15,"points":[{"timestamp":%d,"value":%d}],"tags":[`, i%50, testNow.Unix(), i)
		for j := range 10 {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"label_%d:value_%d_%d"`, j, i, j)
		}
		b.WriteString(`],"resources":[{"name":"node-a","type":"host"}]}`)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkServeSeries measures what the intake costs a test per payload:
// decode, validate and store, without the network. Bytes are decoded bytes.
func BenchmarkServeSeries(b *testing.B) {
	for _, enc := range []string{"identity", "zstd1", "gzip"} {
		b.Run(enc, func(b *testing.B) {
			raw := benchPayload(1000)
			wire := compress(b, enc, raw)
			in, err := New(Config{APIKeys: []string{testKey}, Now: func() time.Time { return testNow }, MaxStoredSeries: 10_000})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, SeriesPath, bytes.NewReader(wire))
				req.Header = jsonHeaders(enc)
				w := httptest.NewRecorder()
				in.ServeHTTP(w, req)
				if w.Code != http.StatusAccepted {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
