package lsm

import (
	"errors"
	"flag"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/internal/vfs/errorfs"
)

var inprocCycles = flag.Int("crash.inproc", 30, "kill cycles of TestCrashInProcess")

// errKilled fails every filesystem operation after a simulated kill.
var errKilled = errors.New("killed")

// TestCrashInProcess is TestCrashSIGKILL without child processes, so that
// many more kills fit in a run: the crash workload runs on the in-memory
// filesystem with the crash options (tiny memtables, tables and levels),
// and at a random mutating operation the filesystem is cloned with every
// write it received, synced or not (what a SIGKILL leaves), and every
// later operation fails. The clone must reopen to exactly the transactions
// up to each partition's committed offset, holding every commit
// acknowledged before the kill; the next cycle goes on from the clone.
func TestCrashInProcess(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	cycles := *inprocCycles
	if testing.Short() {
		cycles = min(cycles, 10)
	}
	mem := vfs.NewMem()
	acked, began := make([]int, crashParts), make([]int, crashParts)
	for i := range acked {
		acked[i], began[i] = -1, -1
	}
	for cycle := range cycles {
		mem = crashInProcessCycle(t, mem, rng, cycle, acked, began)
		o := crashOptions(false)
		o.FS = mem
		db, err := Open("db", o)
		if err != nil {
			t.Fatalf("cycle %d: reopen: %v", cycle, err)
		}
		_, err = checkWorkload(db, crashParts, acked, began)
		db.Close()
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
	}
	t.Logf("%d kill cycles; acknowledged offsets at the end: %v", cycles, acked)
}

// crashInProcessCycle runs the crash workload on a copy of mem until a kill
// at a random mutating operation, and returns the filesystem the kill left.
// It raises acked and began as TestCrashSIGKILL's child reports do.
func crashInProcessCycle(t *testing.T, mem *vfs.MemFS, rng *rand.Rand, cycle int, acked, began []int) *vfs.MemFS {
	// dying is set before the clone is taken, killed after: an
	// acknowledgement counts only if it came before dying, when every write
	// it waited for had completed before the clone began.
	var dying atomic.Bool
	var killed atomic.Pointer[vfs.MemFS]
	var ops atomic.Int64
	killAt := int64(20 + rng.IntN(2000))
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if dying.Load() {
			return errKilled
		}
		if op.Kind.Mutating() && ops.Add(1) == killAt {
			dying.Store(true)
			killed.Store(mem.CrashClone(vfs.CrashCloneConfig{UnsyncedPct: 100}))
			return errKilled
		}
		return nil
	}))
	o := crashOptions(cycle%2 == 1)
	o.FS = fs
	db, err := Open("db", o)
	if err != nil {
		if c := killed.Load(); c != nil {
			return c // killed during recovery
		}
		t.Fatalf("cycle %d: open: %v", cycle, err)
	}
	var mu sync.Mutex
	report := func(format string, args ...any) {
		p, s := args[0].(int), args[1].(int)
		mu.Lock()
		defer mu.Unlock()
		switch format[0] {
		case 'B':
			began[p] = max(began[p], s)
		case 'A':
			if !dying.Load() { // acknowledged before the kill
				acked[p] = max(acked[p], s)
			}
		}
	}
	var wg sync.WaitGroup
	for p := range crashParts {
		seedP := rng.Uint64()
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seedP, uint64(p)))
			s := 0
			if o, err := db.CommittedOffset(workloadOffset(p)); err == nil {
				s = int(o) + 1
			}
			for ; !dying.Load(); s++ {
				if crashCommit(db, r, p, s, report) != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	db.Close()
	c := killed.Load()
	if c == nil {
		t.Fatalf("cycle %d: the workload stopped before the kill", cycle)
	}
	return c
}
