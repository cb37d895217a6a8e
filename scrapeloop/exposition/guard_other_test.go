//go:build !linux

package exposition

import "testing"

// guardedCopy: guard pages are set up on Linux only (guard_test.go).
func guardedCopy(_ testing.TB, data []byte) []byte { return data }
