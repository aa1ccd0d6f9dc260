package lsm

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/internal/vfs/errorfs"
)

// The fault workload: transaction s writes faultWrites(s) keys f/s/i with
// values from crashValue (some larger than a WAL block) and sets offset "p"
// to s, so that the offset tells exactly which transactions must be
// present.

const faultTxns = 40

// tornPct and trashPct damage unsynced blocks in TestPowerCut.
var tornPct, trashPct = 10, 5

func faultWrites(s int) int { return 1 + s%5 }

func faultKey(s, i int) []byte { return []byte(fmt.Sprintf("f/%04d/%d", s, i)) }

// faultOptions make memtables rotate (new WAL files) during the workload.
func faultOptions(fs vfs.FS) *Options {
	return &Options{FS: fs, MemTableSize: 64 << 10}
}

// runFaultWorkload opens the store and commits the workload's transactions
// until one fails. It returns the last acknowledged transaction (-1 if
// none) and the error that stopped it, if any.
func runFaultWorkload(fs vfs.FS, onAck func(s int)) (acked int, err error) {
	acked = -1
	db, err := Open("db", faultOptions(fs))
	if err != nil {
		return acked, err
	}
	defer func() {
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}()
	for s := 0; s < faultTxns; s++ {
		t := db.Begin(nil)
		for i := 0; i < faultWrites(s); i++ {
			if err := t.Set(faultKey(s, i), crashValue(0, s, i)); err != nil {
				return acked, err
			}
		}
		t.SetOffset("p", int64(s))
		if err := t.Commit(); err != nil {
			// After a failed commit the store must refuse writes.
			if err2 := db.Set([]byte("x"), nil); err2 == nil {
				return acked, fmt.Errorf("a write succeeded after the failed commit %d (%v)", s, err)
			}
			return acked, err
		}
		acked = s
		if onAck != nil {
			onAck(s)
		}
	}
	return acked, nil
}

// verifyFaultStore opens the store on fs and checks that it holds exactly
// the transactions up to its committed offset, and at least up to acked.
func verifyFaultStore(fs vfs.FS, acked int) error {
	db, err := Open("db", faultOptions(fs))
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	defer db.Close()
	o := -1
	if v, ok := db.CommittedOffset("p"); ok {
		o = int(v)
	}
	if o < acked {
		return fmt.Errorf("committed offset %d, but transaction %d was acknowledged", o, acked)
	}
	n := 0
	for s := 0; s <= o; s++ {
		for i := 0; i < faultWrites(s); i++ {
			v, err := db.Get(faultKey(s, i))
			if err != nil || string(v) != string(crashValue(0, s, i)) {
				return fmt.Errorf("offset %d: key %s: %v", o, faultKey(s, i), err)
			}
			n++
		}
	}
	it, _ := db.NewIterator(nil)
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		n--
	}
	if n != 0 {
		return fmt.Errorf("offset %d: the store holds %d keys too many", o, -n)
	}
	return nil
}

// TestErrorInjection fails every filesystem operation of the workload in
// turn (EIO once, EIO for good, ENOSPC, short writes) and checks that the
// error reaches the caller, nothing panics, and after reopening no
// acknowledged commit is lost and no commit is partial.
func TestErrorInjection(t *testing.T) {
	var kinds []errorfs.OpKind
	counter := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		kinds = append(kinds, op.Kind)
		return nil
	}))
	if _, err := runFaultWorkload(counter, nil); err != nil {
		t.Fatal(err)
	}
	ops := counter.Ops()
	modes := []struct {
		name string
		inj  func(i int64) errorfs.Injector
	}{
		{"eio-once", func(i int64) errorfs.Injector { return errorfs.OnIndex(i, errorfs.ErrInjected) }},
		{"eio-persistent", func(i int64) errorfs.Injector { return errorfs.Persistent(i, errorfs.ErrInjected) }},
		{"enospc", func(i int64) errorfs.Injector { return errorfs.OnIndex(i, errorfs.ErrNoSpace) }},
		{"short-write", func(i int64) errorfs.Injector {
			return errorfs.OnIndex(i, errorfs.ShortWrite{Err: errorfs.ErrNoSpace})
		}},
	}
	injected := 0
	for _, m := range modes {
		for i := int64(0); i < ops; i++ {
			mem := vfs.NewMem()
			fs := errorfs.Wrap(mem, m.inj(i))
			acked, err := runFaultWorkload(fs, nil)
			if err == nil && acked != faultTxns-1 {
				t.Fatalf("%s at op %d: workload stopped at %d without an error", m.name, i, acked)
			}
			if err != nil && !errors.Is(err, errorfs.ErrInjected) && !errors.Is(err, errorfs.ErrNoSpace) {
				t.Fatalf("%s at op %d: error does not wrap the injected one: %v", m.name, i, err)
			}
			switch {
			case err != nil:
				injected++
			case kinds[i] != errorfs.OpStat:
				// Only the existence check of the directory may fail
				// quietly: Open then creates it.
				t.Fatalf("%s at op %d (%s): the injected error was swallowed", m.name, i, kinds[i])
			}
			if err := verifyFaultStore(mem, acked); err != nil {
				t.Fatalf("%s at op %d (acked %d): %v", m.name, i, acked, err)
			}
		}
	}
	t.Logf("%d ops x %d modes; %d runs saw the injected error", ops, len(modes), injected)
}

// TestPowerCut simulates a power cut at every mutating filesystem operation
// of the workload (the crash-simulating filesystem keeps the synced state
// and none, some or all of the unsynced writes, some torn) and checks that
// every clone reopens with every acknowledged (synced) commit and no partial
// one.
func TestPowerCut(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	mem := vfs.NewMem()
	type clone struct {
		fs    *vfs.MemFS
		acked int
		what  string
	}
	var clones []clone
	acked := -1
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !op.Kind.Mutating() {
			return nil
		}
		for _, pct := range []int{0, 50, 100} {
			cfg := vfs.CrashCloneConfig{UnsyncedPct: pct, TornPct: tornPct, TrashPct: trashPct, Rand: rand.New(rand.NewPCG(rng.Uint64(), 0))}
			clones = append(clones, clone{mem.CrashClone(cfg), acked, "op " + strconv.FormatInt(op.Index, 10) + " " + op.Kind.String() + " " + op.Path + " unsynced%=" + strconv.Itoa(pct)})
		}
		return nil
	}))
	if _, err := runFaultWorkload(fs, func(s int) { acked = s }); err != nil {
		t.Fatal(err)
	}
	for _, c := range clones {
		if err := verifyFaultStore(c.fs, c.acked); err != nil {
			t.Fatalf("power cut before %s (acked %d): %v", c.what, c.acked, err)
		}
	}
	t.Logf("%d simulated power cuts", len(clones))
}
