package fakeintake

import (
	"net/http"
	"strings"
	"testing"
)

// TestSeriesAPI posts a valid v2 and a valid v3 payload to intakes serving
// both, v2 only and v3 only: the served version is stored, the other path
// answers 404 naming itself, counted and with nothing stored.
func TestSeriesAPI(t *testing.T) {
	v2Body := readTestdata(t, "docs_example.json")
	v3Body := compress(t, "zstd", marshalV3(t, validV3()))
	for _, tc := range []struct {
		api        string
		v2OK, v3OK bool
	}{
		{"", true, true},
		{SeriesV2, true, false},
		{SeriesV3, false, true},
	} {
		t.Run("serves "+tc.api, func(t *testing.T) {
			s := startIntake(t, func(c *Config) { c.SeriesAPI = tc.api })
			for _, p := range []struct {
				version, path string
				ok            bool
				h             http.Header
				body          []byte
			}{
				{SeriesV2, SeriesPath, tc.v2OK, jsonHeaders(""), v2Body},
				{SeriesV3, SeriesV3Path, tc.v3OK, v3Headers("zstd"), v3Body},
			} {
				before := s.Stats()
				a := postTo(t, s, p.path, p.h, p.body)
				st := s.Stats()
				if p.ok {
					if a.status != http.StatusAccepted || st.SeriesVersions[p.version] != 1 {
						t.Errorf("%s: status %d, SeriesVersions %v; want 202 and one %s payload (body %s)", p.path, a.status, st.SeriesVersions, p.version, a.body)
					}
					continue
				}
				if a.status != http.StatusNotFound {
					t.Errorf("%s: status %d, want 404 (body %s)", p.path, a.status, a.body)
				}
				want := "no such endpoint " + p.path + ": this intake serves only the " + tc.api + " series API"
				if len(a.errors) != 1 || !strings.Contains(a.errors[0], want) {
					t.Errorf("%s: errors %q, want one containing %q", p.path, a.errors, want)
				}
				if st.Rejected[ReasonWrongSeriesAPI] != before.Rejected[ReasonWrongSeriesAPI]+1 {
					t.Errorf("%s: Rejected %v, want one more %s", p.path, st.Rejected, ReasonWrongSeriesAPI)
				}
				if st.Accepted != before.Accepted || st.Series != before.Series || st.SeriesVersions[p.version] != 0 {
					t.Errorf("%s: the refused payload was stored: %+v", p.path, st)
				}
			}
		})
	}
}

func TestSeriesAPIConfig(t *testing.T) {
	for _, v := range []string{"v1", "V3", "both"} {
		if _, err := New(Config{APIKeys: []string{testKey}, SeriesAPI: v}); err == nil || !strings.Contains(err.Error(), "SeriesAPI") {
			t.Errorf("New(SeriesAPI %q) error = %v, want one naming SeriesAPI", v, err)
		}
	}
	f := func(setting, want string) {
		t.Helper()
		if got := SeriesAPIFor(setting); got != want {
			t.Errorf("SeriesAPIFor(%q) = %q, want %q", setting, got, want)
		}
	}
	f("", SeriesV2)
	f("datadog_only", SeriesV2)
	f("false", SeriesV2)
	f("0", SeriesV2)
	f("nonsense", SeriesV2)
	f("true", SeriesV3)
	f(" TRUE ", SeriesV3)
	f("1", SeriesV3)
	f("t", SeriesV3)
	f("Yes", SeriesV3)
	f("on", SeriesV3)
}
