package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// spawner starts child processes from one goroutine locked to its OS thread.
// Every child gets Pdeathsig=SIGKILL, which the kernel sends when the thread
// that forked it exits; with a dedicated thread that lives until the control
// plane stops, a test binary that dies hard (go test -timeout panic, SIGKILL)
// takes its etcd and kube-apiserver with it instead of leaving orphans.
type spawner struct {
	reqs chan spawnReq
	done chan struct{}
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *spawner) run() {
	defer close(s.done)
	// Never unlocked: when run returns the thread exits with it, which is
	// harmless because close is only called after every child was stopped.
	runtime.LockOSThread()
	for req := range s.reqs {
		req.err <- req.cmd.Start()
	}
}

func (s *spawner) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, err: errc}
	return <-errc
}

// close stops the spawner goroutine and waits for it.
func (s *spawner) close() {
	close(s.reqs)
	<-s.done
}

// process is one running component. Its output goes to a log file that is
// shown when a test fails.
type process struct {
	name    string
	args    []string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed after the process was reaped
	waitErr error         // valid after exited is closed
}

// startProcess runs path with args in its own process group, so stopping it
// reaches anything it forked and a terminal's Ctrl-C (sent to the test's
// process group) is handled by the test, which then stops it in order.
func startProcess(sp *spawner, name, path string, args []string, logPath string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logf.Close() // the child holds its own descriptor
	fmt.Fprintf(logf, "=== %s %s %q\n", time.Now().Format(time.RFC3339Nano), path, args)

	cmd := exec.Command(path, args...)
	cmd.Stdout = logf // an *os.File: no copying goroutines
	cmd.Stderr = logf
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin", "HOME=" + os.TempDir()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := sp.start(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, args: args, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// running reports whether the process has not exited yet.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group and SIGKILL after grace. It only
// signals while the group leader is unreaped, so the group id cannot have
// been reused by an unrelated process.
func (p *process) stop(grace time.Duration) error {
	if !p.running() {
		return nil
	}
	pgid := p.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s: %w", p.name, err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
		return nil
	case <-t.C:
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	<-p.exited
	return fmt.Errorf("stop %s: did not exit within %v of SIGTERM, killed", p.name, grace)
}

// logTail returns the last n lines of the process log.
func (p *process) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", p.logPath, err)
	}
	b = bytes.TrimRight(b, "\n")
	i := len(b)
	for ; n > 0 && i > 0; n-- {
		i = bytes.LastIndexByte(b[:i], '\n')
		if i < 0 {
			i = 0
		}
	}
	return string(bytes.TrimLeft(b[i:], "\n"))
}
