package main

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
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

// startAgent starts the agent binary (built once per test binary) with args,
// its endpoint on a free loopback address, and env as its whole environment.
// When the test fails its log is shown, under name; at cleanup it is killed
// if it still runs.
func startAgent(t *testing.T, name string, env []string, args ...string) *agentProc {
	t.Helper()
	a := &agentProc{t: t, addr: freeAddr(t), exited: make(chan struct{})}
	a.cmd = exec.Command(agentBinary(t), append([]string{"--listen", a.addr}, args...)...)
	a.cmd.Env = env
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

// metric reads one sample of the agent's /metrics; 0 when absent.
func (a *agentProc) metric(name string) float64 {
	a.t.Helper()
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		a.t.Fatalf("agent metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				a.t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	return 0
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

var buildOnce struct {
	sync.Once
	dir string
	bin string
	err error
	out []byte
}

// agentBinary builds the agent once per test binary (TestMain removes it).
func agentBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildOnce.dir, buildOnce.err = os.MkdirTemp("", "nodescraper-bin-")
		if buildOnce.err != nil {
			return
		}
		buildOnce.bin = filepath.Join(buildOnce.dir, "nodescraper")
		buildOnce.out, buildOnce.err = exec.Command("go", "build", "-o", buildOnce.bin, ".").CombinedOutput()
	})
	if buildOnce.err != nil {
		t.Fatalf("go build: %v\n%s", buildOnce.err, buildOnce.out)
	}
	return buildOnce.bin
}

// removeAgentBinary removes what agentBinary built, if anything.
func removeAgentBinary() {
	if buildOnce.dir != "" {
		_ = os.RemoveAll(buildOnce.dir)
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
