// Package testseed gives randomized tests their seed: the -seed flag when
// set, otherwise the clock. The seed is logged, so that a failure can be
// replayed with -seed. Only tests import it.
package testseed

import (
	"flag"
	"testing"
	"time"
)

var seed = flag.Uint64("seed", 0, "seed of the randomized tests (0 = time-based)")

// Seed returns the seed of a randomized test and logs it.
func Seed(t testing.TB) uint64 {
	t.Helper()
	s := *seed
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -seed=%d)", s, s)
	return s
}
