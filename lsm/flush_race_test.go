package lsm

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/internal/vfs/errorfs"
)

// Regression tests for bug 14 (docs/RELIABILITY.md), found by a
// concurrency review of the write path: DB.Flush made its decisions outside
// d.commit's mutex (writable() before it, d.fail after it), so a Close or a
// failed rotation that ran in between left it, or a commit, to dereference
// a nil slot or WAL while holding d.commit's mutex; recovered, the panic
// left the mutex locked and every later commit and Close hung. Each test
// failed on that code.

// TestFlushRacesClose calls DB.Flush from several goroutines while the
// DB closes. DB.Flush checked writable() and only then took d.commit's
// mutex and read d.commit.slot; Close sets d.commit.slot to nil under that
// mutex. A Flush that passed writable() before Close set closed, and took
// the mutex after Close released it, dereferenced a nil *memSlot in
// memSlot.unused. The test recovers a panic and fails.
func TestFlushRacesClose(t *testing.T) {
	const iterations, flushers = 200, 8
	for i := range iterations {
		fs := vfs.NewMem()
		d, err := Open("db", &Options{FS: fs, NoSync: true, DisableAutomaticCompactions: true})
		must(t, err)
		panics := make(chan string, flushers)
		var started, wg sync.WaitGroup
		for range flushers {
			started.Add(1)
			wg.Go(func() {
				defer func() {
					if r := recover(); r != nil {
						panics <- fmt.Sprintf("%v\n%s", r, debug.Stack())
					}
				}()
				started.Done()
				for d.Flush() == nil {
					runtime.Gosched()
				}
			})
		}
		started.Wait()
		for range i % 7 {
			runtime.Gosched()
		}
		d.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		// A Flush that panicked holds d.commit's mutex for good: the other
		// flushers may never return, so do not wait for them then.
		select {
		case p := <-panics:
			t.Fatalf("iteration %d: DB.Flush racing Close panicked: %v", i, p)
		case <-done:
			select {
			case p := <-panics:
				t.Fatalf("iteration %d: DB.Flush racing Close panicked: %v", i, p)
			default:
			}
		}
	}
}

// syncGate blocks (and optionally fails) the syncs of WAL files once armed.
type syncGate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan error
}

func newSyncGate() *syncGate {
	return &syncGate{entered: make(chan struct{}, 16), release: make(chan error, 16)}
}

func (g *syncGate) MaybeError(op errorfs.Op) error {
	if !g.armed.Load() || op.Kind != errorfs.OpSync || !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	g.entered <- struct{}{}
	return <-g.release
}

// waitBlockedIn waits until some goroutine's stack shows fn blocked on a
// sync.Mutex (in lockSlow).
func waitBlockedIn(t *testing.T, fn string) {
	t.Helper()
	if !stackShows(20000, fn, "sync.(*Mutex).lockSlow") {
		t.Fatalf("no goroutine blocked in %s", fn)
	}
}

// stackShows reports whether the stack of some goroutine holds every one of
// parts, looking up to tries times.
func stackShows(tries int, parts ...string) bool {
	buf := make([]byte, 1<<20)
	for range tries {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(g, p) }) {
				return true
			}
		}
		runtime.Gosched()
	}
	return false
}

// openGated opens a store on a memory filesystem whose WAL syncs g
// blocks once armed, and commits one key: the memtable is in use.
func openGated(t *testing.T) (*DB, *syncGate) {
	t.Helper()
	g := newSyncGate()
	d, err := Open("db", &Options{FS: errorfs.Wrap(vfs.NewMem(), g), DisableAutomaticCompactions: true, MemTableSize: 64 << 10})
	must(t, err)
	must(t, d.Set([]byte("x"), []byte("acknowledged")))
	return d, g
}

// goRecovering runs fn on a goroutine of its own and sends its result on
// the channel returned; a panic of fn is stored in panicked, and nil sent.
func goRecovering(fn func() error) (result chan error, panicked *atomic.Value) {
	result, panicked = make(chan error, 1), new(atomic.Value)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				panicked.Store(fmt.Sprintf("%v\n%s", r, debug.Stack()))
				result <- nil
			}
		}()
		result <- fn()
	}()
	return result, panicked
}

// TestFlushAfterFailedRotation: DB.Flush checked writable() before it
// took d.commit's mutex. A rotation that fails (here: the old WAL's
// closing sync fails) leaves d.commit.log nil and turns the DB read-only,
// but a Flush already past its writable() check then took the mutex,
// found the memtable in use, and rotateLocked called closeWAL(nil).
func TestFlushAfterFailedRotation(t *testing.T) {
	// Not closed on failure: the panicking Flush held d.commit's mutex,
	// so Close would wait for it forever.
	d, g := openGated(t)
	g.armed.Store(true)
	errE := make(chan error, 1)
	go func() { errE <- d.Set([]byte("big"), make([]byte, 80<<10)) }() // rotates; blocks in the old WAL's sync
	<-g.entered
	errF, panicked := goRecovering(d.Flush)
	waitBlockedIn(t, "lsm.(*DB).Flush")
	g.armed.Store(false)
	g.release <- errors.New("injected sync failure")
	if err := <-errE; err == nil {
		t.Fatal("the rotating commit was acknowledged")
	}
	<-errF
	if p := panicked.Load(); p != nil {
		t.Fatalf("DB.Flush after a failed rotation panicked: %v", p)
	}
	d.Close()
}

// TestCommitAfterFlushFailedRotation: when DB.Flush's rotation failed
// it unlocked d.commit's mutex before d.fail turned the DB read-only. A
// commit that took the mutex in that window passed writable(), did not
// fit the memtable in use, and rotateLocked called closeWAL(nil): the log
// the failed rotation cleared. The test holds d.mu so that Flush's d.fail
// waits, which only widens the window.
func TestCommitAfterFlushFailedRotation(t *testing.T) {
	// Not closed on failure: the panicking commit held d.commit's mutex.
	d, g := openGated(t)
	g.armed.Store(true)
	errF := make(chan error, 1)
	go func() { errF <- d.Flush() }() // rotates; blocks in the old WAL's closing sync
	<-g.entered
	errE, panicked := goRecovering(func() error { return d.Set([]byte("big"), make([]byte, 80<<10)) })
	waitBlockedIn(t, "lsm.(*DB).enqueue")
	d.mu.Lock()
	g.armed.Store(false)
	g.release <- errors.New("injected sync failure")
	waitBlockedIn(t, "lsm.(*DB).fail")
	// The commit reaches stallLocked (and d.mu) only if Flush released
	// d.commit's mutex before d.fail: the bug. Once fixed, it stays in
	// enqueue, behind Flush.
	stackShows(2000, "lsm.(*DB).stallLocked", "sync.(*Mutex).lockSlow")
	d.mu.Unlock()
	if err := <-errF; err == nil {
		t.Fatal("Flush succeeded")
	}
	err := <-errE
	if p := panicked.Load(); p != nil {
		t.Fatalf("a commit after Flush's failed rotation panicked: %v", p)
	}
	if err == nil {
		t.Fatal("a commit after a failed rotation was acknowledged")
	}
	d.Close()
}
