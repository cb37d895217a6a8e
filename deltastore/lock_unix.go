//go:build unix

package deltastore

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockDir takes an exclusive lock on the state directory, so that two agents
// on one node (a DaemonSet rollout with surge) never restore and write the
// same state: the new one waits until the old one wrote its final
// checkpoint and exited. The kernel releases the lock when a process dies.
func lockDir(ctx context.Context, dir string, log *slog.Logger) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "delta.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if !logged {
			log.Warn("another nodescraper holds the state directory; waiting for it to exit", "dir", dir)
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
