package txn

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// stampedValue is the value the owner writes at stamp: readers can check
// that a value, its key and its stamp belong together.
func stampedValue(key []byte, stamp uint64, pad int) []byte {
	v := fmt.Appendf(nil, "%s:%d:", key, stamp)
	return append(v, bytes.Repeat([]byte{'p'}, pad)...)
}

func checkStamped(key, value []byte, kind base.Kind, stamp uint64) error {
	if kind == base.KindDelete {
		if value != nil {
			return fmt.Errorf("tombstone of %q has a value", key)
		}
		return nil
	}
	prefix := fmt.Appendf(nil, "%s:%d:", key, stamp)
	if !bytes.HasPrefix(value, prefix) {
		return fmt.Errorf("key %q stamp %d has value %.40q", key, stamp, value)
	}
	return nil
}

// TestOverlayConcurrentReaders has the owner write (with compactions and a
// Reset) while 4 goroutines call SharedGet and iterate snapshots. Run it
// with -race.
func TestOverlayConcurrentReaders(t *testing.T) {
	r := newRand(t)
	o := NewOverlay()
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- readLoop(o, &done, g)
		}()
	}
	writes := 6000
	for i := range writes {
		k := []byte(randomKey(r, 100))
		stamp := uint64(i + 1)
		var err error
		if r.IntN(5) == 0 {
			err = o.Delete(k, stamp)
		} else {
			err = o.Set(k, stampedValue(k, stamp, r.IntN(1000)), stamp)
		}
		if err != nil {
			t.Fatal(err)
		}
		if v, kind, found := o.Get(k); !found || checkStamped(k, v, kind, stamp) != nil {
			t.Fatalf("owner Get(%q) after write %d: %q %v", k, stamp, v, found)
		}
		if i == writes/2 {
			o.Reset()
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// readLoop reads o until done, checking what it sees, and finally checks
// that every value it kept is unchanged.
func readLoop(o *Overlay, done *atomic.Bool, g int) error {
	type kept struct{ key, value, copy []byte }
	var keep []kept
	it := new(Iter)
	for i := 0; !done.Load(); i++ {
		k := []byte("k0" + strconv.Itoa(10+i%90))
		v, kind, stamp, found := o.SharedGet(k)
		if found {
			if err := checkStamped(k, v, kind, stamp); err != nil {
				return fmt.Errorf("reader %d SharedGet: %w", g, err)
			}
			if len(keep) < 1000 {
				keep = append(keep, kept{k, v, bytes.Clone(v)})
			}
		}
		it.Init(o.Snapshot())
		if err := checkSnapshotWalk(it, g, i); err != nil {
			return err
		}
	}
	for _, k := range keep {
		if !bytes.Equal(k.value, k.copy) {
			return fmt.Errorf("reader %d: value of %q changed", g, k.key)
		}
	}
	return nil
}

// checkSnapshotWalk iterates a snapshot forward (or backward on odd
// rounds), checking the order, the items and the count.
func checkSnapshotWalk(it *Iter, g, round int) error {
	n := 0
	var prev []byte
	forward := round%2 == 0
	ok := it.First()
	if !forward {
		ok = it.Last()
	}
	for ; ok; n++ {
		c := bytes.Compare(prev, it.Key())
		if n > 0 && (forward && c >= 0 || !forward && c <= 0) {
			return fmt.Errorf("reader %d: snapshot order broken at %q after %q", g, it.Key(), prev)
		}
		if err := checkStamped(it.Key(), it.Value(), it.Kind(), it.Stamp()); err != nil {
			return fmt.Errorf("reader %d snapshot: %w", g, err)
		}
		prev = it.Key()
		if forward {
			ok = it.Next()
		} else {
			ok = it.Prev()
		}
	}
	if n != it.tree.Len() {
		return fmt.Errorf("reader %d: walked %d items of a %d-item snapshot", g, n, it.tree.Len())
	}
	return nil
}
