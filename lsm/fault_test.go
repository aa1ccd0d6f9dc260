package lsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/internal/vfs/errorfs"
	"github.com/stratadb/strata/txn"
	"github.com/stratadb/strata/wal"
)

// The fault workload: in each of cfg.parts partitions, transaction s writes
// faultWrites(s) keys f/p/s/i with values from crashValue (some larger than
// a WAL block) and sets offset "p<p>" to s, so that each offset tells
// exactly which transactions must be present. Partitions commit from
// goroutines of their own.

const faultTxns = 40

// tornPct and trashPct damage unsynced blocks in TestPowerCut.
var tornPct, trashPct = 10, 5

type faultConfig struct {
	parts  int
	noSync bool
}

func faultWrites(s int) int { return 1 + s%5 }

func faultKey(p, s, i int) []byte { return []byte(fmt.Sprintf("f/%d/%04d/%d", p, s, i)) }

func faultOffset(p int) string { return "p" + strconv.Itoa(p) }

// faultOptions make memtables rotate (new WAL files) during the workload.
func faultOptions(fs vfs.FS, cfg faultConfig) *Options {
	return &Options{FS: fs, MemTableSize: 64 << 10, NoSync: cfg.noSync}
}

// runFaultWorkload opens the store and commits the workload's transactions
// until one fails. It returns the last acknowledged transaction of each
// partition (-1 if none) and the first error that stopped a partition.
// onAck, if not nil, is called after each acknowledged commit.
func runFaultWorkload(fs vfs.FS, cfg faultConfig, onAck func(p, s int)) (acked []int, err error) {
	acked = make([]int, cfg.parts)
	for p := range acked {
		acked[p] = -1
	}
	db, err := Open("db", faultOptions(fs, cfg))
	if err != nil {
		return acked, err
	}
	errs := make([]error, cfg.parts)
	var wg sync.WaitGroup
	for p := 0; p < cfg.parts; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = faultPartition(db, p, func(s int) {
				acked[p] = s
				if onAck != nil {
					onAck(p, s)
				}
			})
		}()
	}
	wg.Wait()
	return acked, errors.Join(errors.Join(errs...), db.Close())
}

// faultPartition commits partition p's transactions.
func faultPartition(db *DB, p int, ack func(s int)) error {
	for s := 0; s < faultTxns; s++ {
		t := db.Begin(nil)
		for i := 0; i < faultWrites(s); i++ {
			if err := t.Set(faultKey(p, s, i), crashValue(p, s, i)); err != nil {
				return err
			}
		}
		t.SetOffset(faultOffset(p), int64(s))
		if err := t.Commit(); err != nil {
			// After a failed commit the store must refuse writes.
			if err2 := db.Set([]byte("x"), nil); err2 == nil {
				return fmt.Errorf("a write succeeded after the failed commit %d (%v)", s, err)
			}
			return err
		}
		ack(s)
	}
	return nil
}

// verifyFaultStore opens the store on fs and checks that each partition
// holds exactly the transactions up to its committed offset, and at least
// up to acked.
func verifyFaultStore(fs vfs.FS, cfg faultConfig, acked []int) error {
	db, err := Open("db", faultOptions(fs, cfg))
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	defer db.Close()
	n := 0
	for p := 0; p < cfg.parts; p++ {
		o := -1
		if v, ok := db.CommittedOffset(faultOffset(p)); ok {
			o = int(v)
		}
		if o < acked[p] {
			return fmt.Errorf("partition %d: committed offset %d, but transaction %d was acknowledged", p, o, acked[p])
		}
		for s := 0; s <= o; s++ {
			for i := 0; i < faultWrites(s); i++ {
				v, err := db.Get(faultKey(p, s, i))
				if err != nil || string(v) != string(crashValue(p, s, i)) {
					return fmt.Errorf("partition %d at offset %d: key %s: %v", p, o, faultKey(p, s, i), err)
				}
				n++
			}
		}
	}
	it, _ := db.NewIterator(nil)
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		n--
	}
	if n != 0 {
		return fmt.Errorf("the store holds %d keys too many", -n)
	}
	return nil
}

// TestErrorInjection fails every filesystem operation of the workload in
// turn (EIO once, EIO for good, ENOSPC, short writes) and checks that the
// error reaches the caller, nothing panics, and after reopening no
// acknowledged commit is lost and no commit is partial.
func TestErrorInjection(t *testing.T) {
	counter := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error { return nil }))
	single := faultConfig{parts: 1}
	if _, err := runFaultWorkload(counter, single, nil); err != nil {
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
			// Flushes run in the background, so the operations of two
			// runs need not come in the same order: what matters is the
			// operation that actually failed.
			inj := m.inj(i)
			var mu sync.Mutex
			var fired *errorfs.Op
			fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
				err := inj.MaybeError(op)
				mu.Lock()
				if err != nil && fired == nil {
					fired = &op
				}
				mu.Unlock()
				return err
			}))
			acked, err := runFaultWorkload(fs, single, nil)
			if err == nil && acked[0] != faultTxns-1 {
				t.Fatalf("%s at op %d: workload stopped at %d without an error", m.name, i, acked)
			}
			if err != nil && !errors.Is(err, errorfs.ErrInjected) && !errors.Is(err, errorfs.ErrNoSpace) {
				t.Fatalf("%s at op %d: error does not wrap the injected one: %v", m.name, i, err)
			}
			switch {
			case err != nil:
				injected++
			case fired != nil && fired.Kind != errorfs.OpStat && fired.Kind != errorfs.OpRemove &&
				!(fired.Kind == errorfs.OpClose && strings.HasSuffix(fired.Path, tableSuffix)):
				// Only the existence check of the directory may fail
				// quietly (Open then creates it), the removal of an
				// obsolete file (the next Open removes it), and closing a
				// table read from (a table written is synced and closed
				// by its writer, which reports errors).
				t.Fatalf("%s at op %d (%s %s): the injected error was swallowed", m.name, i, fired.Kind, fired.Path)
			}
			if err := verifyFaultStore(mem, single, acked); err != nil {
				t.Fatalf("%s at op %d (acked %d): %v", m.name, i, acked, err)
			}
		}
	}
	t.Logf("%d ops x %d modes; %d runs saw the injected error", ops, len(modes), injected)
}

// TestPowerCut simulates a power cut at every mutating filesystem operation
// of the workload (the crash-simulating filesystem keeps the synced state
// and none, some or all of the unsynced writes, some torn or trashed) and
// checks that every clone reopens to a prefix of each partition's commits
// that holds every acknowledged commit when commits sync, and no partial
// commit in any mode. It runs one committer, four concurrent ones (whose
// group commits a memtable rotation can catch between write and sync), and
// NoSync (where rotation is the only sync).
func TestPowerCut(t *testing.T) {
	seed := testSeed(t)
	for _, cfg := range []faultConfig{{parts: 1}, {parts: 4}, {parts: 1, noSync: true}, {parts: 4, noSync: true}} {
		t.Run(fmt.Sprintf("parts=%d/nosync=%v", cfg.parts, cfg.noSync), func(t *testing.T) {
			powerCuts(t, cfg, rand.New(rand.NewPCG(seed, uint64(cfg.parts))))
		})
	}
}

func powerCuts(t *testing.T, cfg faultConfig, rng *rand.Rand) {
	mem := vfs.NewMem()
	type clone struct {
		fs    *vfs.MemFS
		acked []int
		what  string
	}
	var mu sync.Mutex // guards the clones, acked and rng
	var clones []clone
	acked := make([]int, cfg.parts)
	for p := range acked {
		acked[p] = -1
	}
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !op.Kind.Mutating() {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		for _, pct := range []int{0, 50, 100} {
			cfg := vfs.CrashCloneConfig{UnsyncedPct: pct, TornPct: tornPct, TrashPct: trashPct, Rand: rand.New(rand.NewPCG(rng.Uint64(), 0))}
			clones = append(clones, clone{mem.CrashClone(cfg), append([]int(nil), acked...), fmt.Sprintf("%s unsynced%%=%d", op, pct)})
		}
		return nil
	}))
	_, err := runFaultWorkload(fs, cfg, func(p, s int) {
		if !cfg.noSync {
			mu.Lock()
			acked[p] = s
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clones {
		if err := verifyFaultStore(c.fs, cfg, c.acked); err != nil {
			t.Fatalf("power cut before %s (acked %v): %v", c.what, c.acked, err)
		}
	}
	t.Logf("%d simulated power cuts", len(clones))
}

// TestReplayRejectsImpossibleCount opens a store whose WAL holds a
// checksum-valid record claiming 2^31 entries in a few bytes: Open must
// report corruption without allocating for the claimed entries.
func TestReplayRejectsImpossibleCount(t *testing.T) {
	mem := vfs.NewMem()
	mem.MkdirAll("db", 0o755)
	f, err := mem.Create("db/000001.log")
	if err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, txn.HeaderSize+8)
	txn.SetSeq(rec, 1)
	binary.LittleEndian.PutUint32(rec[8:], 1<<31)
	w := wal.NewWriter(f, 1)
	if _, err := w.Append(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = Open("db", &Options{FS: mem})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorruption) {
		t.Fatalf("Open: %v, want ErrCorruption", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
		t.Fatalf("Open allocated %d MiB for a %d-byte record", grew>>20, len(rec))
	}
}
