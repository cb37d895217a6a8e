//go:build !race

package deltastore

const raceEnabled = false
