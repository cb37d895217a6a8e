//go:build race

package deltastore

// raceEnabled shortens the simulations under the race detector, which slows
// them tenfold; the full histories run in the ordinary test pass.
const raceEnabled = true
