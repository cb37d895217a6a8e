package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// agentProc is one run of the real agent binary (see startAgent).
type agentProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string        // the endpoint's address (--listen)
	out    syncBuffer    // stderr: the agent's log
	exited chan struct{} // closed once the process has exited
	err    error         // cmd.Wait's answer, once exited is closed
}

// startAgent starts the agent binary (built once per test binary, with the
// race detector when the tests have it) with args, its endpoint on a free
// loopback address, and env as its whole environment (plus this run's
// DD_USE_V3_API_SERIES_ENABLED, agentEnviron). When the test fails
// its log is shown, under name; at cleanup it is killed if it still runs.
func startAgent(t *testing.T, name string, env []string, args ...string) *agentProc {
	t.Helper()
	return startAgentBinary(t, agentBinary(t, raceEnabled), name, env, args...)
}

// startPlainAgent is startAgent with a binary built without the race
// detector, for tests that measure the process itself (its memory): the
// detector multiplies both.
func startPlainAgent(t *testing.T, name string, env []string, args ...string) *agentProc {
	t.Helper()
	return startAgentBinary(t, agentBinary(t, false), name, env, args...)
}

func startAgentBinary(t *testing.T, bin, name string, env []string, args ...string) *agentProc {
	t.Helper()
	a := &agentProc{t: t, addr: freeAddr(t), exited: make(chan struct{})}
	a.cmd = exec.Command(bin, append([]string{"--listen", a.addr}, args...)...)
	a.cmd.Env = agentEnviron(env)
	a.cmd.Stderr = &a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		a.err = a.cmd.Wait()
		close(a.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-a.exited:
		default:
			_ = a.cmd.Process.Kill()
			<-a.exited
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, a.log())
		}
	})
	return a
}

// stop sends SIGTERM and waits for a clean exit within limit; it returns
// how long the agent took.
func (a *agentProc) stop(limit time.Duration) time.Duration {
	a.t.Helper()
	start := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		a.t.Fatal(err)
	}
	select {
	case <-a.exited:
		if a.err != nil {
			a.t.Fatalf("agent exited with %v", a.err)
		}
	case <-time.After(limit):
		a.t.Fatalf("agent did not stop within %s of SIGTERM", limit)
	}
	return time.Since(start)
}

// kill sends SIGKILL and waits for the process to end.
func (a *agentProc) kill() {
	a.t.Helper()
	if err := a.cmd.Process.Kill(); err != nil {
		a.t.Fatal(err)
	}
	<-a.exited
}

// pid is the agent's process id.
func (a *agentProc) pid() int { return a.cmd.Process.Pid }

// log returns the agent's log so far.
func (a *agentProc) log() string { return a.out.String() }

// metric reads one sample of the agent's /metrics (see metricSample).
func (a *agentProc) metric(name string) float64 {
	a.t.Helper()
	return metricSample(a.t, httpGet(a.t, "http://"+a.addr+"/metrics"), name)
}

// metricSample reads the sample name ("name" or `name{labels}`) from a
// /metrics body. A sample that is not there fails the test: a renamed
// metric must not read as 0.
func metricSample(t *testing.T, body, name string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no sample %s", name)
	return 0
}

// waitMetric waits up to limit until the agent's sample name is positive.
func (a *agentProc) waitMetric(name string, limit time.Duration) {
	a.t.Helper()
	deadline := time.Now().Add(limit)
	for a.metric(name) <= 0 {
		if time.Now().After(deadline) {
			a.t.Fatalf("%s still 0 after %s", name, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// builds are the agent binaries built so far: [0] without the race
// detector, [1] with it.
var builds [2]struct {
	sync.Once
	dir string
	bin string
	err error
	out []byte
}

// agentBinary builds the agent once per test binary and race setting
// (TestMain removes it). The end-to-end tests use race = raceEnabled, so
// that under go test -race the detector also watches the binary users run,
// not only the in-process agent.
func agentBinary(t *testing.T, race bool) string {
	t.Helper()
	b := &builds[0]
	args := []string{"build"}
	if race {
		b = &builds[1]
		args = append(args, "-race")
	}
	b.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "nodescraper-bin-")
		if b.err != nil {
			return
		}
		b.bin = filepath.Join(b.dir, "nodescraper")
		b.out, b.err = exec.Command("go", append(args, "-o", b.bin, ".")...).CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), b.err, b.out)
	}
	return b.bin
}

// removeAgentBinary removes what agentBinary built, if anything.
func removeAgentBinary() {
	for i := range builds {
		if builds[i].dir != "" {
			_ = os.RemoveAll(builds[i].dir)
		}
	}
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
