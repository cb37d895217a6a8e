package fakeintake

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// fuzzEncodings are the Content-Encodings the fuzz targets pick from by a
// byte of input.
var fuzzEncodings = []string{"identity", "gzip", "deflate", "zstd", "zstd1"}

// compressAs encodes b with enc as a sender would.
func compressAs(t testing.TB, enc string, b []byte) []byte {
	var buf bytes.Buffer
	switch enc {
	case "identity":
		return b
	case "gzip":
		w := gzip.NewWriter(&buf)
		_, _ = w.Write(b)
		_ = w.Close()
	case "deflate":
		w := zlib.NewWriter(&buf)
		_, _ = w.Write(b)
		_ = w.Close()
	default:
		w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(b)
		_ = w.Close()
	}
	return buf.Bytes()
}

func fuzzIntake(t testing.TB, maxU int64) *Intake {
	in, err := New(Config{
		APIKeys: []string{testKey}, AppKeys: []string{testKey},
		Now:                  func() time.Time { return testNow },
		MaxUncompressedBytes: maxU,
		Logger:               slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)
	return in
}

// FuzzDecompress feeds arbitrary bytes to every decoder: the output never
// passes the limit (a small bomb cannot cost more than limit+1 bytes), and
// the bytes compressed by a real encoder come back as they were.
func FuzzDecompress(f *testing.F) {
	f.Add(byte(0), []byte(`{"series":[]}`))
	f.Add(byte(1), compressAs(f, "gzip", bytes.Repeat([]byte("a"), 5000)))
	f.Add(byte(2), compressAs(f, "deflate", []byte("hello")))
	f.Add(byte(3), compressAs(f, "zstd", bytes.Repeat([]byte("ab"), 3000)))
	f.Add(byte(4), []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0})
	const limit = 4096
	in := fuzzIntake(f, limit)
	f.Fuzz(func(t *testing.T, which byte, data []byte) {
		enc := fuzzEncodings[int(which)%len(fuzzEncodings)]
		out, err := in.decompress(enc, data, limit+1)
		if err == nil && len(out) > limit+1 {
			t.Fatalf("%s: %d bytes out, limit %d", enc, len(out), limit+1)
		}
		// Round trip through a real encoder.
		out, err = in.decompress(enc, compressAs(t, enc, data), limit+1)
		if err != nil {
			t.Fatalf("%s: valid body refused: %v", enc, err)
		}
		want := data[:min(len(data), limit+1)]
		if !bytes.Equal(out, want) {
			t.Fatalf("%s: round trip gave %d bytes, want %d", enc, len(out), len(want))
		}
	})
}

// fuzzPost serves one request with body through h and returns its status.
func fuzzPost(h http.Handler, path, enc string, body []byte, key string) int {
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	if path != CheckRunPath && path != SeriesPath {
		r.Method = http.MethodPut
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Encoding", enc)
	r.Header.Set(APIKeyHeader, key)
	r.Header.Set(AppKeyHeader, key)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

// checkStatus fails unless code is an answer the intake documents: 202 or a
// 4xx the sender must act on; never a 5xx or a panic.
func checkStatus(t *testing.T, what string, code int) {
	t.Helper()
	switch code {
	case http.StatusAccepted, http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
	default:
		t.Fatalf("%s: status %d", what, code)
	}
}

// FuzzSeriesBody posts arbitrary series bodies, in every encoding, to an
// Intake and to a Sink: each answers 202 or a 4xx, and accepts a body only
// if it counts it so.
func FuzzSeriesBody(f *testing.F) {
	for _, name := range []string{"docs_example.json", "agent_like.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(0), b)
		f.Add(byte(3), b)
	}
	f.Add(byte(0), []byte(`{"series":[{"metric":"a","type":1,"interval":10,"points":[{"timestamp":1636629071,"value":1}]}]}`))
	f.Add(byte(1), []byte(`{"series":[{"metric":"a","points":[{"timestamp":"x"}]}]}`))
	f.Add(byte(0), []byte(`{"series":null}`))
	in := fuzzIntake(f, 1<<20)
	sink, err := NewSink(SinkConfig{Config: Config{
		APIKeys: []string{testKey}, Now: func() time.Time { return testNow }, Logger: slog.New(slog.DiscardHandler),
	}, OnAccept: func(time.Time, []SinkSeries) {}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(sink.Close)
	f.Fuzz(func(t *testing.T, which byte, data []byte) {
		enc := fuzzEncodings[int(which)%len(fuzzEncodings)]
		body := compressAs(t, enc, data)
		before := in.Stats().Accepted
		code := fuzzPost(in, SeriesPath, enc, body, testKey)
		checkStatus(t, "intake", code)
		if got := in.Stats().Accepted - before; (code == http.StatusAccepted) != (got == 1) {
			t.Fatalf("status %d, accepted count +%d", code, got)
		}
		sinkBefore := sink.Stats().Accepted
		scode := fuzzPost(sink, SeriesPath, enc, body, testKey)
		checkStatus(t, "sink", scode)
		if got := sink.Stats().Accepted - sinkBefore; (scode == http.StatusAccepted) != (got == 1) {
			t.Fatalf("sink status %d, accepted count +%d", scode, got)
		}
		// The raw bytes as if they were already compressed.
		checkStatus(t, "raw", fuzzPost(in, SeriesPath, enc, data, testKey))
	})
}

// FuzzCheckRunBody posts arbitrary service check bodies.
func FuzzCheckRunBody(f *testing.F) {
	f.Add(byte(0), []byte(`{"check":"app.openmetrics.health","host_name":"node-1","status":0,"timestamp":1636629071,"tags":["a:b"]}`))
	f.Add(byte(1), []byte(`[{"check":"x","host_name":"h","status":2}]`))
	f.Add(byte(0), []byte(`{"check":"","status":9}`))
	in := fuzzIntake(f, 1<<20)
	f.Fuzz(func(t *testing.T, which byte, data []byte) {
		enc := fuzzEncodings[int(which)%len(fuzzEncodings)]
		checkStatus(t, "check_run", fuzzPost(in, CheckRunPath, enc, compressAs(t, enc, data), testKey))
	})
}

// FuzzMetadataBody puts arbitrary metric metadata bodies.
func FuzzMetadataBody(f *testing.F) {
	f.Add([]byte(`{"type":"count","description":"Requests.","unit":"request"}`))
	f.Add([]byte(`{"type":7}`))
	in := fuzzIntake(f, 1<<20)
	// Datadog edits the metadata of metrics it knows.
	known := []byte(`{"series":[{"metric":"app.req","type":1,"interval":10,"points":[{"timestamp":1636629071,"value":1}]}]}`)
	if code := fuzzPost(in, SeriesPath, "identity", known, testKey); code != http.StatusAccepted {
		f.Fatalf("series: status %d", code)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		code := fuzzPost(in, MetadataPathPrefix+"app.req", "identity", data, testKey)
		switch code {
		case http.StatusOK, http.StatusAccepted, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("metadata: status %d", code)
		}
	})
}
