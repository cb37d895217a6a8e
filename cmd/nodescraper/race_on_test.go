//go:build race

package main

// raceEnabled says this test binary was built with -race; the agent binary
// the end-to-end tests run is then built with -race too (agentBinary).
const raceEnabled = true
