package ddclient

import (
	"strings"
	"testing"
)

// TestMetricsHelp: every metric of the client, the spool's included, has
// HELP text.
func TestMetricsHelp(t *testing.T) {
	c := newTestClient(t, "http://127.0.0.1:1", nil)
	if err := c.OpenSpool(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	help := c.MetricsHelp()
	for _, name := range c.Metrics().ListMetricNames() {
		family, _, _ := strings.Cut(name, "{")
		if help[family] == "" {
			t.Errorf("%s has no HELP text", family)
		}
	}
}
