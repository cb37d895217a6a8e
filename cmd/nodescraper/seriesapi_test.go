package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
)

// The end-to-end tests run against the series API the agent's environment
// chooses: make test runs them as they are (v2: the default sends v2 to a
// loopback intake) and again with DD_USE_V3_API_SERIES_ENABLED=true (make
// e2e-v3). The intakes serve only that version (fakeintake.SeriesAPIFromEnv),
// and every agent a test starts sees the variable, whatever environment the
// test gives it: a run that passes used the version it names.

// agentEnviron is env, a subprocess agent's whole environment, plus
// DD_USE_V3_API_SERIES_ENABLED from this process's when set and env has none.
func agentEnviron(env []string) []string {
	v, ok := os.LookupEnv(fakeintake.SeriesAPIEnv)
	if !ok || slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, fakeintake.SeriesAPIEnv+"=") }) {
		return env
	}
	return append(slices.Clip(env), fakeintake.SeriesAPIEnv+"="+v)
}

// agentGetenv is the getenv of an in-process agent whose environment is env:
// DD_USE_V3_API_SERIES_ENABLED, when env has none, is this process's.
func agentGetenv(env map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := env[k]; ok || k != fakeintake.SeriesAPIEnv {
			return v
		}
		return os.Getenv(k)
	}
}

// checkSeriesAPI fails the test if in refused series payloads sent to the
// path of the version this run does not use: the agent chose the other one.
func checkSeriesAPI(t *testing.T, in *fakeintake.Server) {
	t.Helper()
	if n := in.Stats().Rejected[fakeintake.ReasonWrongSeriesAPI]; n > 0 {
		t.Errorf("the agent sent %d series payloads to the wrong path: this run (%s=%q) expects the %s series API",
			n, fakeintake.SeriesAPIEnv, os.Getenv(fakeintake.SeriesAPIEnv), fakeintake.SeriesAPIFromEnv())
	}
}

func TestAgentEnviron(t *testing.T) {
	t.Setenv(fakeintake.SeriesAPIEnv, "true")
	if got := agentEnviron([]string{"DD_API_KEY=k"}); !slices.Equal(got, []string{"DD_API_KEY=k", fakeintake.SeriesAPIEnv + "=true"}) {
		t.Errorf("agentEnviron = %q, want the variable passed through", got)
	}
	if got := agentEnviron([]string{fakeintake.SeriesAPIEnv + "=false"}); !slices.Equal(got, []string{fakeintake.SeriesAPIEnv + "=false"}) {
		t.Errorf("agentEnviron = %q, want the test's own setting kept", got)
	}
	getenv := agentGetenv(map[string]string{"DD_API_KEY": "k"})
	if getenv(fakeintake.SeriesAPIEnv) != "true" || getenv("DD_API_KEY") != "k" || getenv("HOME") != "" {
		t.Errorf("agentGetenv: %q %q %q", getenv(fakeintake.SeriesAPIEnv), getenv("DD_API_KEY"), getenv("HOME"))
	}
	if got := agentGetenv(map[string]string{fakeintake.SeriesAPIEnv: "false"})(fakeintake.SeriesAPIEnv); got != "false" {
		t.Errorf("agentGetenv = %q, want the test's own setting kept", got)
	}
}
