package fakeintake

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

func TestNewConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no key", Config{}, "no API key"},
		{"empty key", Config{APIKeys: []string{"a", ""}}, "APIKeys[1] is empty"},
		{"negative limit", Config{APIKeys: []string{"a"}, MaxCompressedBytes: -1}, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestAPIKey(t *testing.T) {
	body := readTestdata(t, "docs_example.json")
	for _, tc := range []struct {
		name   string
		path   string
		method string
		key    string
		status int
		reason Reason
	}{
		{"series without key", SeriesPath, http.MethodPost, "", http.StatusForbidden, ReasonMissingAPIKey},
		{"series with wrong key", SeriesPath, http.MethodPost, "nope", http.StatusForbidden, ReasonInvalidAPIKey},
		{"validate without key", ValidatePath, http.MethodGet, "", http.StatusForbidden, ReasonMissingAPIKey},
		{"validate with wrong key", ValidatePath, http.MethodGet, "nope", http.StatusForbidden, ReasonInvalidAPIKey},
		{"validate with POST", ValidatePath, http.MethodPost, testKey, http.StatusMethodNotAllowed, ReasonMethod},
		{"series with GET", SeriesPath, http.MethodGet, testKey, http.StatusMethodNotAllowed, ReasonMethod},
		{"v1 series is not served", "/api/v1/series", http.MethodPost, testKey, http.StatusNotFound, ReasonNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startIntake(t, nil)
			h := jsonHeaders("")
			h.Del(APIKeyHeader)
			if tc.key != "" {
				h.Set(APIKeyHeader, tc.key)
			}
			a, err := send(t, newClient(t, 0), tc.method, s.URL+tc.path, h, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			want := "Forbidden" // Datadog's body for a bad key
			if tc.status != http.StatusForbidden {
				want = ""
			}
			wantRefused(t, s, a, tc.status, tc.reason, want)
		})
	}
	t.Run("validate with key", func(t *testing.T) {
		s := startIntake(t, nil)
		a, err := send(t, newClient(t, 0), http.MethodGet, s.URL+ValidatePath, jsonHeaders(""), nil)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusOK || strings.TrimSpace(a.body) != `{"valid":true}` {
			t.Fatalf("got %d %s, want 200 {\"valid\":true}", a.status, a.body)
		}
	})
}

func TestEncodingsAccepted(t *testing.T) {
	body := readTestdata(t, "docs_example.json")
	for _, enc := range []string{"", "identity", "gzip", "deflate", "zstd", "zstd1", "GZip"} {
		t.Run("encoding="+enc, func(t *testing.T) {
			s := startIntake(t, nil)
			wire := compress(t, enc, body)
			a := post(t, s, jsonHeaders(enc), wire)
			if a.status != http.StatusAccepted || strings.TrimSpace(a.body) != `{"errors":[]}` {
				t.Fatalf("got %d %s, want 202 {\"errors\":[]}", a.status, a.body)
			}
			st := s.Stats()
			counted := strings.ToLower(enc)
			if counted == "" {
				counted = "identity"
			}
			if st.Accepted != 1 || st.Encodings[counted] != 1 || st.CompressedBytes != int64(len(wire)) || st.UncompressedBytes != int64(len(body)) {
				t.Errorf("stats = %+v, want 1 accepted %s payload of %d/%d bytes", st, counted, len(wire), len(body))
			}
			if p, ok := s.Last("system.load.1"); !ok || p.Value != 0.7 || p.Timestamp != 1636629071 || p.Host() != "dummyhost" {
				t.Errorf("Last(system.load.1) = %+v, %v; want 0.7 at 1636629071 on dummyhost", p, ok)
			}
		})
	}
}

func TestHeadersRefused(t *testing.T) {
	body := readTestdata(t, "docs_example.json")
	for _, tc := range []struct {
		name   string
		mod    func(http.Header)
		wire   []byte
		reason Reason
		want   string
	}{
		{"brotli", func(h http.Header) { h.Set("Content-Encoding", "br") }, body, ReasonContentEncoding, `Content-Encoding "br" is not supported`},
		{"two encodings", func(h http.Header) { h.Add("Content-Encoding", "gzip"); h.Add("Content-Encoding", "zstd") }, body, ReasonContentEncoding, "several Content-Encoding"},
		{"text/plain", func(h http.Header) { h.Set("Content-Type", "text/plain") }, body, ReasonContentType, `Content-Type "text/plain"`},
		{"no content type", func(h http.Header) { h.Del("Content-Type") }, body, ReasonContentType, "send application/json"},
		{"gzip header, plain body", func(h http.Header) { h.Set("Content-Encoding", "gzip") }, body, ReasonBadCompression, "not valid gzip"},
		{"zstd header, gzip body", func(h http.Header) { h.Set("Content-Encoding", "zstd1") }, compress(t, "gzip", body), ReasonBadCompression, "not valid zstd1"},
		{"deflate header, truncated", func(h http.Header) { h.Set("Content-Encoding", "deflate") }, compress(t, "deflate", body)[:20], ReasonBadCompression, "not valid deflate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startIntake(t, nil)
			h := jsonHeaders("")
			tc.mod(h)
			wantRefused(t, s, post(t, s, h, tc.wire), http.StatusBadRequest, tc.reason, tc.want)
		})
	}
	t.Run("charset parameter is fine", func(t *testing.T) {
		s := startIntake(t, nil)
		h := jsonHeaders("")
		h.Set("Content-Type", "application/json; charset=utf-8")
		if a := post(t, s, h, body); a.status != http.StatusAccepted {
			t.Fatalf("got %d %s, want 202", a.status, a.body)
		}
	})
}

// padded returns the docs example followed by spaces up to n bytes: still
// valid JSON, of an exact size.
func padded(t *testing.T, n int) []byte {
	b := bytes.TrimSpace(readTestdata(t, "docs_example.json"))
	if n < len(b) {
		t.Fatalf("padded: %d < %d", n, len(b))
	}
	return append(b, bytes.Repeat([]byte(" "), n-len(b))...)
}

// onlyReader hides bytes.Reader's Len so the client sends the body chunked,
// without Content-Length.
type onlyReader struct{ io.Reader }

func TestSizeLimits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		enc     string
		body    []byte
		chunked bool
		status  int
		reason  Reason
	}{
		{"identity at limit", "", padded(t, DefaultMaxCompressedBytes), false, http.StatusAccepted, ""},
		{"identity over limit", "", padded(t, DefaultMaxCompressedBytes+1), false, http.StatusRequestEntityTooLarge, ReasonTooLargeCompressed},
		{"chunked over limit", "", padded(t, DefaultMaxCompressedBytes+1), true, http.StatusRequestEntityTooLarge, ReasonTooLargeCompressed},
		{"chunked at limit", "", padded(t, DefaultMaxCompressedBytes), true, http.StatusAccepted, ""},
		{"gzip decoded at limit", "gzip", padded(t, DefaultMaxUncompressedBytes), false, http.StatusAccepted, ""},
		{"gzip decoded over limit", "gzip", padded(t, DefaultMaxUncompressedBytes+1), false, http.StatusRequestEntityTooLarge, ReasonTooLargeUncompressed},
		{"zstd decoded at limit", "zstd1", padded(t, DefaultMaxUncompressedBytes), false, http.StatusAccepted, ""},
		{"zstd decoded over limit", "zstd1", padded(t, DefaultMaxUncompressedBytes+1), false, http.StatusRequestEntityTooLarge, ReasonTooLargeUncompressed},
		{"deflate decoded over limit", "deflate", padded(t, DefaultMaxUncompressedBytes+1), false, http.StatusRequestEntityTooLarge, ReasonTooLargeUncompressed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startIntake(t, nil)
			wire := compress(t, tc.enc, tc.body)
			var r io.Reader = bytes.NewReader(wire)
			if tc.chunked {
				r = onlyReader{r}
			}
			a, err := send(t, newClient(t, 0), http.MethodPost, s.URL+SeriesPath, jsonHeaders(tc.enc), r)
			if err != nil {
				t.Fatal(err)
			}
			if tc.status == http.StatusAccepted {
				if a.status != tc.status {
					t.Fatalf("got %d %s, want 202", a.status, a.body)
				}
				return
			}
			wantRefused(t, s, a, tc.status, tc.reason, "over the limit")
		})
	}
}

// TestBombRefusedCheaply sends bodies that inflate to hundreds of MiB and
// checks they are refused after decoding little more than the limit.
func TestBombRefusedCheaply(t *testing.T) {
	for _, tc := range []struct {
		enc      string
		inflated int64
	}{
		{"zstd1", 1 << 30},
		{"gzip", 400 << 20},
	} {
		t.Run(tc.enc, func(t *testing.T) {
			s := startIntake(t, nil)
			wire := bomb(t, tc.enc, tc.inflated)
			if len(wire) > DefaultMaxCompressedBytes {
				t.Fatalf("bomb is %d bytes on the wire, over the compressed limit: the test would not reach the decoder", len(wire))
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			a := post(t, s, jsonHeaders(tc.enc), wire)
			runtime.ReadMemStats(&after)
			wantRefused(t, s, a, http.StatusRequestEntityTooLarge, ReasonTooLargeUncompressed, "decompressed payload is over the limit")
			// The limit is 5 MiB; decoding through the limited reader and
			// io.ReadAll's growth stay well under 64 MiB, a full decode not.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("refusing a %d-byte bomb (%d MiB inflated) allocated %d MiB", len(wire), tc.inflated>>20, alloc>>20)
			}
		})
	}
}

// bomb returns a body that inflates to n zero bytes: one compressed MiB of
// zeros repeated, since gzip members and zstd frames may be concatenated.
// Cheap to build, even under the race detector.
func bomb(t *testing.T, enc string, n int64) []byte {
	t.Helper()
	const chunk = 1 << 20
	var buf bytes.Buffer
	var w io.WriteCloser
	switch enc {
	case "zstd1":
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	case "gzip":
		gw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		w = gw
	}
	if _, err := io.CopyN(w, zeros{}, chunk); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.Repeat(buf.Bytes(), int(n/chunk))
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestTimestampWindow(t *testing.T) {
	now := testNow.Unix()
	for _, tc := range []struct {
		offset int64
		ok     bool
		want   string
	}{
		{-3600, true, ""},
		{-3601, false, "is 1h0m1s before now"},
		{-86400 * 365, false, "before now"},
		{0, true, ""},
		{600, true, ""},
		{601, false, "is 10m1s after now"},
		{now*1000 - now, false, "milliseconds instead of seconds?"},
	} {
		t.Run(fmt.Sprint(tc.offset), func(t *testing.T) {
			s := startIntake(t, nil)
			body := fmt.Sprintf(`{"series":[{"metric":"a.b","type":3,"points":[{"timestamp":%d,"value":1}]}]}`, now+tc.offset)
			a := post(t, s, jsonHeaders(""), []byte(body))
			if tc.ok {
				if a.status != http.StatusAccepted {
					t.Fatalf("got %d %s, want 202", a.status, a.body)
				}
				return
			}
			wantRefused(t, s, a, http.StatusBadRequest, ReasonTimestamp, tc.want)
		})
	}
}

func TestModelRefused(t *testing.T) {
	ts := testNow.Unix()
	// series builds a one-series payload from the JSON fields given.
	series := func(fields string) string {
		return `{"series":[{` + strings.ReplaceAll(fields, "TS", fmt.Sprint(ts)) + `}]}`
	}
	const pt = `"points":[{"timestamp":TS,"value":1}]`
	for _, tc := range []struct {
		name   string
		body   string
		reason Reason
		want   string
	}{
		{"not json", `series=1`, ReasonUndecodable, "not a MetricPayload"},
		{"empty body", ``, ReasonUndecodable, "not a MetricPayload"},
		{"array", `[]`, ReasonUndecodable, "not a MetricPayload"},
		{"no series", `{}`, ReasonUndecodable, "required field series missing"},
		{"series is a string", `{"series":"x"}`, ReasonUndecodable, "series must be a list of objects"},
		{"NaN literal", series(`"metric":"a","points":[{"timestamp":TS,"value":NaN}]`), ReasonUndecodable, "invalid character"},
		{"type out of enum", series(`"metric":"a","type":7,` + pt), ReasonUndecodable, "type 7 is not one of"},
		{"type as string", series(`"metric":"a","type":"gauge",` + pt), ReasonUndecodable, "cannot unmarshal string"},
		{"metric missing", series(pt), ReasonUndecodable, "required field metric missing"},
		{"metric empty", series(`"metric":"",` + pt), ReasonInvalid, "metric name is empty"},
		{"points missing", series(`"metric":"a"`), ReasonUndecodable, "required field points missing"},
		{"points empty", series(`"metric":"a","points":[]`), ReasonInvalid, "no points"},
		{"value missing", series(`"metric":"a","points":[{"timestamp":TS}]`), ReasonInvalid, "needs both timestamp and value"},
		{"timestamp missing", series(`"metric":"a","points":[{"value":1}]`), ReasonInvalid, "needs both timestamp and value"},
		{"value as string", series(`"metric":"a","points":[{"timestamp":TS,"value":"1"}]`), ReasonUndecodable, "cannot unmarshal string"},
		{"fractional timestamp", series(`"metric":"a","points":[{"timestamp":1.5,"value":1}]`), ReasonUndecodable, "cannot unmarshal number 1.5"},
		{"count without interval", series(`"metric":"a","type":1,` + pt), ReasonInvalid, "type 1 (count) needs an interval"},
		{"rate with zero interval", series(`"metric":"a","type":2,"interval":0,` + pt), ReasonInvalid, "type 2 (rate) needs an interval"},
		{"negative interval", series(`"metric":"a","type":3,"interval":-5,` + pt), ReasonInvalid, "interval -5 is negative"},
		{"unknown series field", series(`"metric":"a","tag":["x:y"],` + pt), ReasonInvalid, `unknown fields ["tag"]`},
		{"unknown payload field", `{"serie":[],"series":[]}`, ReasonInvalid, `payload: unknown fields ["serie"]`},
		{"unknown point field", series(`"metric":"a","points":[{"timestamp":TS,"value":1,"v":2}]`), ReasonInvalid, `point 0: unknown fields ["v"]`},
		{"empty tag", series(`"metric":"a","tags":["a:b",""],` + pt), ReasonInvalid, "tag 1 is empty"},
		{"resource without type", series(`"metric":"a","resources":[{"name":"h"}],` + pt), ReasonInvalid, "resource 0 needs both name and type"},
		{"metadata wrong type", series(`"metric":"a","metadata":{"origin":{"product":"x"}},` + pt), ReasonUndecodable, "cannot unmarshal string"},
		{"second series broken", `{"series":[{"metric":"ok",` + strings.ReplaceAll(pt, "TS", fmt.Sprint(ts)) + `},{"metric":"b","points":[{"timestamp":"x","value":1}]}]}`, ReasonUndecodable, "series[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startIntake(t, nil)
			wantRefused(t, s, post(t, s, jsonHeaders(""), []byte(tc.body)), http.StatusBadRequest, tc.reason, tc.want)
			if len(s.Series()) != 0 {
				t.Errorf("refused payload was stored: %v", s.Series())
			}
		})
	}
}

func TestModelRefusedListsProblems(t *testing.T) {
	s := startIntake(t, nil)
	var parts []string
	for i := range 12 {
		parts = append(parts, fmt.Sprintf(`{"metric":"m%d","type":1,"points":[{"timestamp":%d,"value":1}]}`, i, testNow.Unix()))
	}
	a := post(t, s, jsonHeaders(""), []byte(`{"series":[`+strings.Join(parts, ",")+`]}`))
	wantRefused(t, s, a, http.StatusBadRequest, ReasonInvalid, `series[0] "m0": type 1 (count) needs an interval`)
	if !strings.Contains(a.body, "interval > 0") {
		t.Errorf("body %s escapes its message; want it readable", a.body)
	}
	if !strings.Contains(a.errors[0], `series[9] "m9"`) || !strings.Contains(a.errors[0], "and 2 more problems") {
		t.Errorf("error = %q, want the first 10 problems and a count of the 2 others", a.errors[0])
	}
}

func TestRelaxedChecks(t *testing.T) {
	s := startIntake(t, func(c *Config) {
		c.AllowMissingInterval = true
		c.AllowUnknownFields = true
	})
	body := fmt.Sprintf(`{"series":[{"metric":"a","type":1,"tag":["x"],"points":[{"timestamp":%d,"value":2}]}]}`, testNow.Unix())
	if a := post(t, s, jsonHeaders(""), []byte(body)); a.status != http.StatusAccepted {
		t.Fatalf("got %d %s, want 202", a.status, a.body)
	}
	if got := s.Sum("a"); got != 2 {
		t.Errorf("Sum(a) = %v, want 2", got)
	}
}

func TestCustomLimitsAndClock(t *testing.T) {
	clock := testNow.Add(24 * time.Hour) // a day later: the docs example is now too old
	s := startIntake(t, func(c *Config) {
		c.Now = func() time.Time { return clock }
		c.MaxCompressedBytes = 200
	})
	wantRefused(t, s, post(t, s, jsonHeaders(""), padded(t, 201)), http.StatusRequestEntityTooLarge, ReasonTooLargeCompressed, "limit of 200 bytes")
	wantRefused(t, s, post(t, s, jsonHeaders(""), padded(t, 200)), http.StatusBadRequest, ReasonTimestamp, "before now")
}

func TestWaitForContext(t *testing.T) {
	s := startIntake(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WaitFor(ctx, func(in *Intake) bool { return in.Stats().Accepted > 0 }); err == nil {
		t.Fatal("WaitFor on a cancelled context returned nil")
	}
}
