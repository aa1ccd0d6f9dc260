package lsm

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratadb/strata/internal/vfs"
)

// TestReadRacingClose guards bug 16 (docs/RELIABILITY.md): a Get that
// passed its closed check before Close began and loaded the read state
// after Close installed its last one (which holds no memtable) read the
// tables only, so a key held only by the memtable came back ErrNotFound
// (and CommittedOffset reported "no offset ever committed") instead of its
// value or ErrClosed. Readers of a value and of an offset run while the
// store closes; each must read the right answer until it gets ErrClosed.
// It failed every run on the old code.
func TestReadRacingClose(t *testing.T) {
	const rounds, readers = 10, 16
	var bad atomic.Int64
	var first atomic.Value
	for round := 0; round < rounds; round++ {
		d, err := Open("db", &Options{FS: vfs.NewMem(), NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		must(t, d.Set([]byte("k"), []byte("v")))
		tx := d.Begin(nil)
		must(t, tx.SetOffset("p", 42))
		must(t, tx.Commit())
		var wg sync.WaitGroup
		var started sync.WaitGroup
		for i := range readers {
			wg.Add(1)
			started.Add(1)
			go func() {
				defer wg.Done()
				started.Done()
				for {
					var err error
					var what string
					if i%2 == 0 {
						var v []byte
						v, err = d.Get([]byte("k"))
						if err == nil && string(v) != "v" {
							err = fmt.Errorf("value %q", v)
						}
						what = "Get"
					} else {
						var o int64
						o, err = d.CommittedOffset("p")
						if err == nil && o != 42 {
							err = fmt.Errorf("offset %d", o)
						}
						what = "CommittedOffset"
					}
					switch {
					case err == nil:
						continue
					case errors.Is(err, ErrClosed):
						return
					default:
						bad.Add(1)
						first.CompareAndSwap(nil, fmt.Sprintf("round %d: %s racing Close: %v", round, what, err))
						return
					}
				}
			}()
		}
		started.Wait()
		time.Sleep(200 * time.Microsecond)
		must(t, d.Close())
		wg.Wait()
	}
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d reads racing Close returned a wrong answer; first: %v", n, first.Load())
	}
}
