//go:build !unix

package deltastore

import (
	"context"
	"log/slog"
)

// lockDir is a no-op where flock is not available; nodescraper runs on Linux.
func lockDir(context.Context, string, *slog.Logger) (func(), error) {
	return func() {}, nil
}
