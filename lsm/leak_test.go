package lsm

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestCloseLeavesNoGoroutines opens stores, makes them flush and compact,
// closes them (some with a flush or compaction in flight), and checks that
// no goroutine of the engine is left behind.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := len(engineGoroutines())
	for i := 0; i < 5; i++ {
		d := openTest(t, t.TempDir(), &Options{MemTableSize: 64 << 10, NoSync: true, L0CompactionThreshold: 2})
		for j := 0; j < 2000; j++ {
			must(t, d.Set([]byte(fmt.Sprintf("k%05d", j)), make([]byte, 100)))
		}
		if i%2 == 0 {
			must(t, d.Compact())
		}
		must(t, d.Close())
	}
	// Goroutines exit right after Close returns; give the scheduler time to
	// retire them before looking.
	var leaked []string
	for try := 0; try < 50; try++ {
		leaked = engineGoroutines()
		if len(leaked) <= before {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("goroutines left after Close:\n%s", strings.Join(leaked, "\n\n"))
}

// engineGoroutines returns the stacks of the engine's background goroutines
// (of any DB still open).
func engineGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "lsm.(*DB).flushLoop") || strings.Contains(g, "lsm.(*DB).compactLoop") {
			found = append(found, g)
		}
	}
	return found
}
