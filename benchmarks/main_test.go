package benchmarks

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the tests start must have ended when they finish.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// VictoriaMetrics' fasttime starts a never-ending clock ticker in its package init.
		goleak.IgnoreTopFunction("github.com/VictoriaMetrics/VictoriaMetrics/lib/fasttime.init.0.func1"),
		// VictoriaMetrics' timeutil refreshes the timezone offset forever from its package init.
		goleak.IgnoreTopFunction("github.com/VictoriaMetrics/VictoriaMetrics/lib/timeutil.init.0.func1"),
		// VictoriaMetrics' bytesutil cleans its package-level intern map (var ism) forever.
		goleak.IgnoreTopFunction("github.com/VictoriaMetrics/VictoriaMetrics/lib/bytesutil.newInternStringMap.func1"),
	)
}
