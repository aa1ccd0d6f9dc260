package lsm

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
)

// Regression tests for bugs 18-21 (docs/RELIABILITY.md), found by a review
// of the transaction, namespace and iterator lifecycle; each failed every
// run on the code before its fix.

// fillTables writes n keys, in several tables of level 1 and deeper
// (DB.Compact with a small TargetFileSize), and a few more that stay in the
// memtable.
func fillTables(t *testing.T, d *DB, n int) {
	t.Helper()
	val := make([]byte, 200)
	for i := range n {
		must(t, d.Set(fmt.Appendf(nil, "k%05d", i), val))
	}
	must(t, d.Flush())
	must(t, d.Compact())
	for i := range 10 {
		must(t, d.Set(fmt.Appendf(nil, "m%05d", i), val))
	}
}

// TestIteratorStopsAfterDBClose (bug 18): Iterator.Next (moving forward)
// and Prev (moving backward) did not check that the DB is open: only seeks
// and a change of direction did. ErrClosed's doc says it is returned by
// "the iterators of a closed DB" and DB.Close's that "iterators ... still
// open stop working". An iterator positioned before Close kept returning
// entries, ended with a nil Error (a caller could not tell the scan was cut
// by Close), or, when it needed a table of a level it had not opened yet,
// stopped with sstable's "closed" error, which is not ErrClosed.
func TestIteratorStopsAfterDBClose(t *testing.T) {
	for _, backward := range []bool{false, true} {
		t.Run(fmt.Sprintf("backward=%v", backward), func(t *testing.T) {
			d, err := Open("db", &Options{FS: vfs.NewMem(), NoSync: true, DisableAutomaticCompactions: true, TargetFileSize: 8 << 10})
			must(t, err)
			fillTables(t, d, 2000)
			it, err := d.NewIterator(nil)
			must(t, err)
			defer it.Close()
			var ok bool
			if backward {
				ok = it.Last()
			} else {
				ok = it.First()
			}
			if !ok {
				t.Fatalf("no first entry: %v", it.Error())
			}
			must(t, d.Close())
			moved := 0
			for {
				if backward {
					ok = it.Prev()
				} else {
					ok = it.Next()
				}
				if !ok {
					break
				}
				moved++
			}
			if moved > 0 || !errors.Is(it.Error(), ErrClosed) {
				t.Fatalf("after DB.Close the iterator moved %d more times and stopped with error %v; want no move and ErrClosed", moved, it.Error())
			}
		})
	}
}

// TestForeignNamespaceHandle (bug 20): Txn.In and Snapshot.In accepted a
// Namespace handle of another DB. Nothing checked ns.db against the
// transaction's or snapshot's DB: TxnNamespace checked the handle against
// its own DB and wrote the handle's id into this DB's keyspace, where no
// namespace (or another one) has that id. The commit succeeded; the writes
// then showed up in whatever namespace this DB created next with that id.
// Snapshot.In(ns).Get read the handle's DB at the snapshot's sequence
// number, which belongs to another DB. Both now return ErrForeignNamespace.
func TestForeignNamespaceHandle(t *testing.T) {
	a := openTest(t, "", &Options{InMemory: true})
	b := openTest(t, "", &Options{InMemory: true})
	nsA, err := a.Namespace("orders")
	must(t, err)
	tx := b.Begin(nil)
	if err := tx.In(nsA).Set([]byte("k"), []byte("written through a handle of another DB")); err == nil {
		must(t, tx.Commit())
		// Some later namespace of b gets the id nsA has in a.
		nsB, err := b.Namespace("payments")
		must(t, err)
		if v, err := nsB.Get([]byte("k")); err == nil {
			t.Errorf("b's new namespace %q holds %q, written by a transaction of b through a's handle %q (ids %d, %d)", nsB.Name(), v, nsA.Name(), nsB.id, nsA.id)
		}
	} else {
		tx.Rollback()
	}

	// Snapshot of b read through a's handle: reads a at b's sequence number.
	must(t, nsA.Set([]byte("s"), []byte("old")))
	snapB, err := b.NewSnapshot() // b's visible sequence number: small
	must(t, err)
	defer snapB.Close()
	for range 20 {
		must(t, nsA.Set([]byte("s"), []byte("new")))
	}
	v, err := snapB.In(nsA).Get([]byte("s"))
	if err == nil {
		t.Errorf("b's snapshot read through a's handle gave a's value %q as of b's sequence number %d (a's newest is \"new\"); want an error", v, snapB.Seq())
	}
}

// TestNilDBFlushCompact (bug 21): the DB doc says "every method of a
// closed (or nil) DB returns ErrClosed". Flush (and Compact, which calls
// it) locked d.commit's mutex before any check, so a nil *DB panicked.
func TestNilDBFlushCompact(t *testing.T) {
	var d *DB
	for name, fn := range map[string]func() error{"Flush": d.Flush, "Compact": d.Compact} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("nil DB: %s panicked: %v", name, r)
				}
			}()
			if err := fn(); !errors.Is(err, ErrClosed) {
				t.Errorf("nil DB: %s returned %v, want ErrClosed", name, err)
			}
		}()
	}
}

// TestIteratorRacingDBClose (bug 19): an iterator made while the DB
// closes must fail with ErrClosed. newIterator opens the level-0 tables at
// once; when Close had closed the table cache in between, the iterator
// recorded sstable's "closed" error, and Iterator.usable returned on that
// error before it checked whether the DB is closed, so First reported it
// instead of ErrClosed (so did a level iterator opening its first table).
func TestIteratorRacingDBClose(t *testing.T) {
	const rounds, readers = 30, 8
	bad := map[string]int{}
	var mu sync.Mutex
	for range rounds {
		d, err := Open("db", &Options{FS: vfs.NewMem(), NoSync: true, DisableAutomaticCompactions: true})
		must(t, err)
		for i := range 8 {
			must(t, d.Set(fmt.Appendf(nil, "k%d", i), []byte("v")))
			must(t, d.Flush())
		}
		var wg, started sync.WaitGroup
		for range readers {
			started.Add(1)
			wg.Go(func() {
				started.Done()
				for {
					it, err := d.NewIterator(nil)
					if err == nil {
						it.First()
						err = it.Close()
					}
					switch {
					case err == nil:
						continue
					case !errors.Is(err, ErrClosed):
						mu.Lock()
						bad[err.Error()]++
						mu.Unlock()
					}
					return
				}
			})
		}
		started.Wait()
		must(t, d.Close())
		wg.Wait()
	}
	if len(bad) > 0 {
		t.Fatalf("iterators made while the DB closed failed with errors other than ErrClosed: %v", bad)
	}
}
