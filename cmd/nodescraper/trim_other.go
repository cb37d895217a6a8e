//go:build !linux

package main

import (
	"context"
	"log/slog"
)

// releasePages releases nothing where the executable's mappings are not
// read from /proc (see trim_linux.go).
func releasePages(context.Context, *slog.Logger) {}
