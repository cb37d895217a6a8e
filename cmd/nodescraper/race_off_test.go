//go:build !race

package main

// raceEnabled says this test binary was built with -race (see race_on_test.go).
const raceEnabled = false
