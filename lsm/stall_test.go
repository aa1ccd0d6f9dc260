package lsm

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// TestWriteStallsBoundMemory writes from several goroutines into a store
// whose flushes and compactions cannot keep up (tiny memtables, low level-0
// thresholds) and checks, by sampling Metrics meanwhile, that the memtables
// and level-0 tables stay within their stop-writes thresholds, that every
// write completes (stalls end by themselves), and that the data is all
// there.
func TestWriteStallsBoundMemory(t *testing.T) {
	o := &Options{
		NoSync:                      true,
		MemTableSize:                64 << 10,
		MemTableStopWritesThreshold: 2,
		L0CompactionThreshold:       2,
		L0SlowdownWritesThreshold:   3,
		L0StopWritesThreshold:       4,
		DelayedWriteRate:            64 << 20,
	}
	d := openTest(t, t.TempDir(), o)
	const writers, txns, perTxn = 4, 150, 20
	var done atomic.Bool
	var maxMems, maxL0 int
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for !done.Load() {
			m := d.Metrics()
			maxMems = max(maxMems, m.MemTables)
			maxL0 = max(maxL0, m.Levels[0].Tables)
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < txns && errs[w] == nil; i++ {
				errs[w] = d.Update(func(tx *Txn) error {
					for j := 0; j < perTxn; j++ {
						if err := tx.Set([]byte(fmt.Sprintf("w%d/%04d/%02d", w, i, j)), make([]byte, 100)); err != nil {
							return err
						}
					}
					return tx.SetOffset(fmt.Sprintf("w%d", w), int64(i))
				})
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	<-sampled
	for _, err := range errs {
		must(t, err)
	}
	m := d.Metrics()
	t.Logf("at most %d memtables and %d level-0 tables seen; %d stalls (%v), slowed down %v, %d flushes, %d compactions",
		maxMems, maxL0, m.Stalls, m.StallTime, m.SlowdownTime, m.Flushes, m.Compactions)
	if maxMems > o.MemTableStopWritesThreshold {
		t.Errorf("%d memtables held, the threshold is %d", maxMems, o.MemTableStopWritesThreshold)
	}
	// Flushes already queued when writes stop may still land in level 0.
	if limit := o.L0StopWritesThreshold + o.MemTableStopWritesThreshold; maxL0 > limit {
		t.Errorf("%d level-0 tables, more than %d", maxL0, limit)
	}
	offsets, err := d.CommittedOffsets()
	must(t, err)
	for w := 0; w < writers; w++ {
		if got := offsets[fmt.Sprintf("w%d", w)]; got != txns-1 {
			t.Fatalf("writer %d: offset %d", w, got)
		}
		mustGet(t, d, fmt.Sprintf("w%d/%04d/%02d", w, txns-1, perTxn-1), string(make([]byte, 100)))
	}
}
