package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// agentSpec names an agent binary to measure.
type agentSpec struct {
	Name string   `json:"name"`
	Path string   `json:"path"`
	Args []string `json:"args,omitempty"` // extra agent flags
}

// agentProc is a running agent.
type agentProc struct {
	cmd    *exec.Cmd
	listen string // its node-local endpoint, host:port
	log    *os.File
	exited chan error // receives cmd.Wait's result once
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// freePort returns a loopback address nobody listens on right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// startAgent runs bin with args, DD_API_KEY=key and its output in logPath.
func startAgent(bin string, args []string, key, logPath string) (*agentProc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("agent log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DD_") && !strings.HasPrefix(kv, "NODESCRAPER_") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DD_API_KEY="+key)
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return nil, fmt.Errorf("start agent %s: %w", bin, err)
	}
	a := &agentProc{cmd: cmd, log: lf, exited: make(chan error, 1)}
	for i, arg := range args {
		if arg == "--listen" && i+1 < len(args) {
			a.listen = args[i+1]
		}
	}
	go func() { a.exited <- cmd.Wait() }()
	return a, nil
}

// waitHealthy polls /healthz until it answers 200, the agent exits or ctx ends.
func (a *agentProc) waitHealthy(ctx context.Context) error {
	c := &http.Client{Timeout: 2 * time.Second}
	defer c.CloseIdleConnections()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.listen+"/healthz", nil)
		if err != nil {
			return fmt.Errorf("agent healthz: %w", err)
		}
		if resp, err := c.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-a.exited:
			a.exited <- err // keep it for stop
			return fmt.Errorf("agent exited before it was healthy: %v (log %s)", err, a.log.Name())
		case <-ctx.Done():
			return fmt.Errorf("agent not healthy: %w (log %s)", context.Cause(ctx), a.log.Name())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cpuSeconds is the agent's user plus system CPU time so far, all threads.
func (a *agentProc) cpuSeconds() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("agent cpu: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("agent cpu: malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 { // fields 3.. ; utime and stime are fields 14 and 15
		return 0, errors.New("agent cpu: short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("agent cpu: %w", err)
	}
	return float64(ut+st) / clockTicks, nil
}

// rssBytes is the agent's VmRSS.
func (a *agentProc) rssBytes() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("agent rss: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("agent rss: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("agent rss: no VmRSS in /proc status: %v", sc.Err())
}

// dropCounters reads the agent's /metrics and returns every nodescraper_*
// counter (a _total name, or # TYPE counter) whose name contains dropped,
// refused, rejected or errors, by series, with nonzero values only, and
// their sum.
func (a *agentProc) dropCounters(ctx context.Context) (map[string]float64, float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.listen+"/metrics", nil)
	if err != nil {
		return nil, 0, fmt.Errorf("agent metrics: %w", err)
	}
	c := &http.Client{}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("agent metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, 0, fmt.Errorf("agent metrics: %w", err)
	}
	return parseDrops(body)
}

func parseDrops(body []byte) (map[string]float64, float64, error) {
	counterType := map[string]bool{}
	out := map[string]float64{}
	var sum float64
	for _, ln := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(ln, "# TYPE "); ok {
			if f := strings.Fields(rest); len(f) == 2 && f[1] == "counter" {
				counterType[f[0]] = true
			}
			continue
		}
		if ln == "" || ln[0] == '#' || !strings.HasPrefix(ln, "nodescraper_") {
			continue
		}
		sp := strings.LastIndexByte(ln, ' ')
		if sp < 0 {
			continue
		}
		series := ln[:sp]
		name, _, _ := strings.Cut(series, "{")
		if !strings.HasSuffix(name, "_total") && !counterType[name] {
			continue
		}
		if !strings.Contains(name, "dropped") && !strings.Contains(name, "refused") &&
			!strings.Contains(name, "rejected") && !strings.Contains(name, "errors") {
			continue
		}
		v, err := strconv.ParseFloat(ln[sp+1:], 64)
		if err != nil {
			return nil, 0, fmt.Errorf("agent metrics: line %q: %w", ln, err)
		}
		if v != 0 {
			out[series] = v
			sum += v
		}
	}
	return out, sum, nil
}

// stop sends SIGTERM and waits for the agent to exit, killing it after
// timeout. It reports how long the exit took.
func (a *agentProc) stop(timeout time.Duration) (time.Duration, error) {
	defer a.log.Close()
	start := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return 0, fmt.Errorf("agent: SIGTERM: %w", err)
	}
	select {
	case err := <-a.exited:
		if err != nil {
			return time.Since(start), fmt.Errorf("agent exited with %w (log %s)", err, a.log.Name())
		}
		return time.Since(start), nil
	case <-time.After(timeout):
		_ = a.cmd.Process.Kill()
		<-a.exited
		return time.Since(start), fmt.Errorf("agent did not exit within %s of SIGTERM: killed (log %s)", timeout, a.log.Name())
	}
}

// version runs bin --version.
func version(bin string) string {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// agentArgs are the flags of a local-mode run, leaving out (and logging) any
// that bin's --help does not list, so older and newer binaries both run.
func agentArgs(bin, sdPath, ddURL, stateDir, listen string, interval time.Duration, logf func(string, ...any)) []string {
	help, _ := exec.Command(bin, "--help").CombinedOutput() // flag's -help exits non-zero
	var args []string
	for _, kv := range [][2]string{
		{"static-targets", sdPath},
		{"scrape-interval", interval.String()},
		{"dd-url", ddURL},
		{"allow-insecure-datadog-url", "true"}, // the harness' loopback intake
		{"compression", "zstd"},
		{"state-dir", stateDir},
		{"listen", listen},
		{"node-name", nodeName},
		{"enable-pprof", "true"},
	} {
		if !bytes.Contains(help, []byte("  -"+kv[0]+" ")) && !bytes.Contains(help, []byte("  -"+kv[0]+"\n")) && !bytes.Contains(help, []byte("  --"+kv[0]+" ")) {
			logf("%s --help does not list --%s: running without it", bin, kv[0])
			continue
		}
		if kv[1] == "true" {
			args = append(args, "--"+kv[0]) // a boolean flag
			continue
		}
		args = append(args, "--"+kv[0], kv[1])
	}
	return args
}

// profile saves the agent's /debug/pprof/<what> (served with
// --enable-pprof) to path.
func (a *agentProc) profile(ctx context.Context, what, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.listen+"/debug/pprof/"+what, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/%s: %s", what, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
