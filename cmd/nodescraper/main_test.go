package main

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the tests start must have ended when they finish.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(cleanupM{m})
}

// cleanupM runs the tests, then removes the agent binary they built.
type cleanupM struct{ m *testing.M }

func (c cleanupM) Run() int {
	defer removeAgentBinary()
	return c.m.Run()
}
