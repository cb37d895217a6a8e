package ddclient

import (
	"strings"
	"testing"
)

func TestUseV3Series(t *testing.T) {
	cases := []struct {
		setting, url string
		want         bool
		err          string // a part of the error; empty: none
	}{
		// datadog_only (and its empty default): Datadog's sites only.
		{"datadog_only", "https://api.datadoghq.com", true, ""},
		{"", "https://api.datadoghq.com", true, ""},
		{" Datadog_Only ", "https://api.datadoghq.com", true, ""},
		{"datadog_only", "https://us5.datadoghq.com", true, ""},
		{"datadog_only", "https://api.us3.datadoghq.com", true, ""},
		{"datadog_only", "https://app.datadoghq.eu", true, ""},
		{"datadog_only", "https://api.ddog-gov.com", true, ""},
		{"datadog_only", "https://ap1.datadoghq.com", true, ""},
		{"datadog_only", "https://api.datad0g.com", true, ""},
		{"datadog_only", "https://api.datad0g.eu", true, ""},
		{"datadog_only", "https://datadoghq.com", true, ""},
		{"datadog_only", "https://API.DatadogHQ.com.:443/", true, ""},
		{"datadog_only", "https://api.datadoghq.com:8443/path", true, ""},
		{"datadog_only", "https://datadoghq.com.evil.io", false, ""},
		{"datadog_only", "https://mydatadoghq.com", false, ""},
		{"datadog_only", "https://api.datadoghq.co", false, ""},
		{"datadog_only", "http://127.0.0.1:8129", false, ""},
		{"datadog_only", "http://[::1]:8129", false, ""},
		{"datadog_only", "https://dd-proxy.internal", false, ""},
		{"datadog_only", "https://observability-pipelines.example.com:8282", false, ""},
		// Booleans hold for any URL.
		{"true", "http://127.0.0.1:8129", true, ""},
		{"1", "https://dd-proxy.internal", true, ""},
		{"T", "https://dd-proxy.internal", true, ""},
		{"yes", "https://dd-proxy.internal", true, ""},
		{" ON ", "https://dd-proxy.internal", true, ""},
		{"false", "https://api.datadoghq.com", false, ""},
		{"0", "https://api.datadoghq.com", false, ""},
		{"f", "https://api.datadoghq.com", false, ""},
		{"No", "https://api.datadoghq.com", false, ""},
		{"off", "https://api.datadoghq.com", false, ""},
		// Errors.
		{"maybe", "https://api.datadoghq.com", false, `v3 series setting "maybe": want datadog_only, true or false`},
		{"datadog", "https://api.datadoghq.com", false, `"datadog"`},
		{"datadog_only", "http://[::1", false, `parse "http://[::1"`},
		{"", "://api.datadoghq.com", false, "missing protocol scheme"},
	}
	for _, c := range cases {
		got, err := UseV3Series(c.setting, c.url)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("UseV3Series(%q, %q): err = %v, want one containing %q", c.setting, c.url, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("UseV3Series(%q, %q): %v", c.setting, c.url, err)
		case got != c.want:
			t.Errorf("UseV3Series(%q, %q) = %v, want %v", c.setting, c.url, got, c.want)
		}
	}
}
