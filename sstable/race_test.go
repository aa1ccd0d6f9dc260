//go:build race

package sstable

// raceEnabled is set under the race detector, which slows the exhaustive
// tests down tenfold: they then sample instead (the full sweeps run without
// -race), and sync.Pool drops items at random, so allocation counts are not
// checked.
const raceEnabled = true
