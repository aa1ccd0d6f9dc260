package lsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
)

// crashMaxWrite bounds the data keys of one crash-workload transaction.
const crashMaxWrite = 8

// The crash workload: partition p's transaction s writes 1..8 data keys
// d/p/s/i and a count key d/p/s/_n, sets offset p = s, and deletes the
// keys of older transactions (crashDeletions): most live for 5
// transactions, most of the rest for 300 (long enough for their tombstones
// to meet them in a deep level), and one in 64 forever, so that the store
// stays small while the workload runs for ever. Values are a function of
// (p, s, i), some larger than a WAL block. Some transactions are rolled back
// after writing unique keys r/p/s/* that must never appear. Everything is
// deterministic, so the expected store for any committed offset can be
// recomputed.

func mix(x uint64) uint64 {
	x ^= x >> 31
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 29
	x *= 0x94D049BB133111EB
	return x ^ x>>32
}

func crashWrites(p, s int) int { return 1 + int(mix(uint64(p)<<32|uint64(s))%crashMaxWrite) }

// The lifetimes of the crash workload's transactions, in transactions of
// their partition.
const (
	crashShortLife = 5
	crashLongLife  = 300
)

// crashDeletedBy returns the transaction that deletes the keys of
// transaction d, and false if none does.
func crashDeletedBy(d int) (int, bool) {
	switch {
	case d%64 == 0:
		return 0, false
	case d%8 == 0:
		return d + crashLongLife, true
	}
	return d + crashShortLife, true
}

// crashDeletions returns the transactions whose keys transaction s deletes.
func crashDeletions(s int) []int {
	var ds []int
	for _, life := range [...]int{crashShortLife, crashLongLife} {
		if by, ok := crashDeletedBy(s - life); ok && s >= life && by == s {
			ds = append(ds, s-life)
		}
	}
	return ds
}

// crashLive reports whether the keys of transaction s are in the store at
// committed offset o >= s.
func crashLive(s, o int) bool {
	by, ok := crashDeletedBy(s)
	return !ok || by > o
}

func crashKey(p, s int, i int) string {
	if i < 0 {
		return fmt.Sprintf("d/%d/%06d/_n", p, s)
	}
	return fmt.Sprintf("d/%d/%06d/%02d", p, s, i)
}

func crashValue(p, s, i int) []byte {
	h, n := crashValueHash(p, s, i)
	// v[j] = byte(h >> (8 * (j % 8))), built by doubling copies (fast
	// under the race detector too), with s in decimal over the start.
	v := make([]byte, n)
	binary.LittleEndian.PutUint64(v, h)
	for j := 8; j < len(v); j *= 2 {
		copy(v[j:], v[:j])
	}
	copy(v, strconv.Itoa(s))
	return v
}

// crashValueHash returns the hash crashValue(p, s, i) repeats and its
// length.
func crashValueHash(p, s, i int) (h uint64, n int) {
	h = mix(uint64(p)<<40 ^ uint64(s)<<8 ^ uint64(i))
	n = int(h % 200)
	if h%16 == 0 {
		n = 33000 + int(h%20000)
	}
	return h, n + 8
}

// crashValueIs reports whether v is crashValue(p, s, i), without making
// the large ones: it compares the first 16 bytes and checks that the rest
// repeats with period 8.
func crashValueIs(p, s, i int, v []byte) bool {
	h, n := crashValueHash(p, s, i)
	prefix := strconv.Itoa(s)
	if n <= 64 || len(prefix) > 8 {
		return bytes.Equal(v, crashValue(p, s, i))
	}
	var head [16]byte
	binary.LittleEndian.PutUint64(head[:], h)
	binary.LittleEndian.PutUint64(head[8:], h)
	copy(head[:], prefix)
	return len(v) == n && bytes.Equal(v[:16], head[:]) && bytes.Equal(v[16:], v[8:n-8])
}

// crashExpected returns the data keys partition p must hold when its
// committed offset is o, each with the transaction s that wrote it and its
// index i (-1 for the count key).
func crashExpected(p, o int) map[string][2]int {
	m := map[string][2]int{}
	for s := 0; s <= o; s++ {
		if !crashLive(s, o) {
			continue
		}
		for i := -1; i < crashWrites(p, s); i++ {
			m[crashKey(p, s, i)] = [2]int{s, i}
		}
	}
	return m
}

// crashExpectedValue reports whether v is the value of key (s, i) of
// partition p.
func crashExpectedValue(p int, key [2]int, v []byte) bool {
	s, i := key[0], key[1]
	if i < 0 {
		return string(v) == strconv.Itoa(crashWrites(p, s))
	}
	return crashValueIs(p, s, i, v)
}

// crashOptions are the options of the crash workload's store: memtables,
// tables, level targets and manifests so small that flushes, compactions
// into level 2 and deeper, table deletions and manifest rolls happen all
// the time.
func crashOptions(noSync bool) *Options {
	return &Options{
		NoSync:                noSync,
		MemTableSize:          96 << 10,
		L0CompactionThreshold: 2,
		TargetFileSize:        64 << 10,
		LevelBaseBytes:        128 << 10,
		LevelMultiplier:       2,
		MaxManifestFileSize:   16 << 10,
	}
}

// TestCrashValueIs checks crashValueIs against crashValue.
func TestCrashValueIs(t *testing.T) {
	large := 0
	for p := 0; p < 4; p++ {
		for s := 0; s < 100; s++ {
			for i := 0; i < crashMaxWrite; i++ {
				v := crashValue(p, s, i)
				if len(v) > 64 {
					large++
				}
				if !crashValueIs(p, s, i, v) {
					t.Fatalf("crashValueIs(%d, %d, %d) refuses crashValue", p, s, i)
				}
				for _, j := range []int{0, 7, 8, 15, 16, len(v) / 2, len(v) - 1} {
					w := bytes.Clone(v)
					w[j%len(w)]++
					if crashValueIs(p, s, i, w) {
						t.Fatalf("crashValueIs(%d, %d, %d) accepts a value changed at byte %d", p, s, i, j%len(w))
					}
				}
				if crashValueIs(p, s, i, v[:len(v)-1]) || crashValueIs(p, s+1, i, v) {
					t.Fatalf("crashValueIs(%d, %d, %d) accepts a truncated value or another's", p, s, i)
				}
			}
		}
	}
	if large == 0 {
		t.Fatal("no large value checked")
	}
}

// TestCrashDeletions checks that crashLive agrees with applying
// crashDeletions transaction by transaction, and that each transaction is
// deleted at most once.
func TestCrashDeletions(t *testing.T) {
	live := map[int]bool{}
	kept := 0
	for o := 0; o < 2000; o++ {
		live[o] = true
		for _, d := range crashDeletions(o) {
			if !live[d] {
				t.Fatalf("transaction %d deletes %d, which is not live", o, d)
			}
			delete(live, d)
		}
		for s := 0; s <= o && o%50 == 0; s++ {
			if crashLive(s, o) != live[s] {
				t.Fatalf("crashLive(%d, %d) = %v, want %v", s, o, !live[s], live[s])
			}
		}
		kept = len(live)
	}
	if kept > 2000/64+crashLongLife/8+crashShortLife+2 {
		t.Fatalf("%d of 2000 transactions live", kept)
	}
}

// crashCommit commits transaction s of partition p of the crash workload,
// after rolling back another one time in ten. report writes the pending
// (B), acknowledged (A) and failed (F) states to the parent's pipe.
func crashCommit(db *DB, rng *rand.Rand, p, s int, report func(string, ...any)) error {
	return workloadCommit(db, p, s, rng.IntN(10) == 0, report)
}

// workloadRollsBack reports whether partition p rolls a transaction back
// before its transaction s, for runs that must be reproducible without a
// random source (one in ten).
func workloadRollsBack(p, s int) bool { return mix(uint64(p)<<32|uint64(s)|1<<63)%10 == 0 }

// workloadOffset is the name of partition p's offset.
func workloadOffset(p int) string { return strconv.Itoa(p) }

// workloadCommit commits transaction s of partition p, first rolling back
// another one if rollback. report, if not nil, gets the pending (B),
// acknowledged (A) and failed (F) states. A write the transaction refuses
// stops it before Commit.
func workloadCommit(db *DB, p, s int, rollback bool, report func(string, ...any)) error {
	if report == nil {
		report = func(string, ...any) {}
	}
	if rollback {
		tx := db.Begin(nil)
		tx.Set([]byte(fmt.Sprintf("r/%d/%06d", p, s)), []byte("rolled back"))
		tx.SetOffset(workloadOffset(p), int64(s+1_000_000))
		tx.Rollback()
	}
	tx := db.Begin(nil)
	if err := workloadWrites(tx, p, s); err != nil {
		tx.Rollback()
		return fmt.Errorf("transaction %d/%d: %w", p, s, err)
	}
	report("B %d %d\n", p, s)
	if err := tx.Commit(); err != nil {
		report("F %d %d\n", p, s)
		return fmt.Errorf("commit of %d/%d: %w", p, s, err)
	}
	report("A %d %d\n", p, s)
	return nil
}

// workloadWrites makes the writes of transaction s of partition p in tx.
func workloadWrites(tx *Txn, p, s int) error {
	n := crashWrites(p, s)
	var errs []error
	for i := 0; i < n; i++ {
		errs = append(errs, tx.Set([]byte(crashKey(p, s, i)), crashValue(p, s, i)))
	}
	errs = append(errs, tx.Set([]byte(crashKey(p, s, -1)), []byte(strconv.Itoa(n))))
	for _, d := range crashDeletions(s) {
		for i := -1; i < crashWrites(p, d); i++ {
			errs = append(errs, tx.Delete([]byte(crashKey(p, d, i))))
		}
	}
	errs = append(errs, tx.SetOffset(workloadOffset(p), int64(s)))
	return errors.Join(errs...)
}

// checkWorkload checks that the store holds exactly the transactions of
// each of its parts partitions up to the partition's committed offset,
// which must lie in [lo[p], hi[p]] (-1: none committed): one scan of the
// whole store must meet exactly the expected keys with their values, in
// strictly ascending order, and nothing else (no rolled-back write, no
// key of another partition); some keys are also read by Get, and the keys
// deleted since must be absent. No offset but the partitions' may exist.
// It returns the committed offsets.
func checkWorkload(db *DB, parts int, lo, hi []int) ([]int, error) {
	offsets, err := db.CommittedOffsets()
	if err != nil {
		return nil, fmt.Errorf("committed offsets: %w", err)
	}
	for name := range offsets {
		if n, err := strconv.Atoi(name); err != nil || n < 0 || n >= parts || workloadOffset(n) != name {
			return nil, fmt.Errorf("unexpected offset name %q", name)
		}
	}
	got := make([]int, parts)
	want := make([]map[string][2]int, parts)
	for p := range parts {
		o := -1
		if v, ok := offsets[workloadOffset(p)]; ok {
			o = int(v)
		}
		got[p] = o
		if o < lo[p] || o > hi[p] {
			return got, fmt.Errorf("partition %d: committed offset %d, want it in [%d, %d] (acknowledged, begun)", p, o, lo[p], hi[p])
		}
		want[p] = crashExpected(p, o)
	}
	if err := checkWorkloadScan(db, got, want); err != nil {
		return got, err
	}
	for p := range parts {
		if err := checkWorkloadGets(db, p, got[p], want[p]); err != nil {
			return got, err
		}
	}
	return got, nil
}

// checkWorkloadScan scans the whole store: it must hold exactly the keys
// want[p] of each partition p (at committed offset offsets[p]) with their
// values, in strictly ascending order.
func checkWorkloadScan(db *DB, offsets []int, want []map[string][2]int) error {
	it, err := db.NewIterator(nil)
	if err != nil {
		return err
	}
	seen := make([]int, len(want))
	var prev []byte
	for ok := it.First(); ok && err == nil; ok = it.Next() {
		k := it.Key()
		var p int
		var w [2]int
		switch {
		case prev != nil && bytes.Compare(prev, k) >= 0:
			err = fmt.Errorf("the scan went from key %q to %q", prev, k)
		case bytes.HasPrefix(k, []byte("r/")):
			err = fmt.Errorf("rolled-back key %s is present", k)
		default:
			p, w, ok = workloadKey(k, want)
			switch {
			case !ok:
				err = fmt.Errorf("unexpected key %q (offsets %v)", k, offsets)
			case !crashExpectedValue(p, w, it.Value()):
				err = fmt.Errorf("key %s has a wrong value", k)
			}
			seen[p]++
		}
		prev = append(prev[:0], k...)
	}
	if err := errors.Join(err, it.Close()); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	for p, n := range seen {
		if n != len(want[p]) {
			return fmt.Errorf("partition %d at offset %d holds %d of %d keys", p, offsets[p], n, len(want[p]))
		}
	}
	return nil
}

// workloadKey returns the partition of key k and its entry in want, if k
// is one of the keys want expects.
func workloadKey(k []byte, want []map[string][2]int) (p int, w [2]int, ok bool) {
	rest, found := bytes.CutPrefix(k, []byte("d/"))
	if !found {
		return 0, w, false
	}
	digits, _, found := bytes.Cut(rest, []byte("/"))
	p, err := strconv.Atoi(string(digits))
	if !found || err != nil || p < 0 || p >= len(want) {
		return 0, w, false
	}
	w, ok = want[p][string(k)]
	return p, w, ok
}

// checkWorkloadGets checks point reads of partition p at committed offset
// o (whose expected data keys are want): some keys it must hold, the keys
// of the next transaction and of the last ones deleted, which it must not.
func checkWorkloadGets(db *DB, p, o int, want map[string][2]int) error {
	n := 0
	for k, w := range want { // in random order
		if n++; n > 64 {
			break
		}
		if v, err := db.Get([]byte(k)); err != nil || !crashExpectedValue(p, w, v) {
			return fmt.Errorf("Get(%s) = %d bytes, %v; want its value", k, len(v), err)
		}
	}
	absent := []string{crashKey(p, o+1, -1), crashKey(p, o+1, 0)}
	for s := o; s >= 0 && len(absent) < 12; s-- {
		for _, d := range crashDeletions(s) {
			absent = append(absent, crashKey(p, d, -1), crashKey(p, d, 0))
		}
	}
	for _, k := range absent {
		if _, err := db.Get([]byte(k)); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("Get(%s) = %v, want ErrNotFound", k, err)
		}
	}
	return nil
}

// TestCheckWorkload feeds checkWorkload a store that holds the workload
// exactly, then one damaged in each way it must catch.
func TestCheckWorkload(t *testing.T) {
	const parts, txns = 2, 20
	open := func(t *testing.T) *DB {
		db, err := Open("", &Options{InMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		for p := range parts {
			for s := range txns {
				if err := workloadCommit(db, p, s, workloadRollsBack(p, s), nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		return db
	}
	lo, hi := []int{txns - 1, txns - 1}, []int{txns - 1, txns - 1}
	if _, err := checkWorkload(open(t), parts, lo, hi); err != nil {
		t.Fatalf("intact store: %v", err)
	}
	damage := []struct {
		name string
		do   func(db *DB) error
		lo   []int
	}{
		{"stray key", func(db *DB) error { return db.Set([]byte("e/stray"), nil) }, lo},
		{"key of a third partition", func(db *DB) error { return db.Set([]byte(crashKey(2, 0, 0)), crashValue(2, 0, 0)) }, lo},
		{"key missing", func(db *DB) error { return db.Delete([]byte(crashKey(1, txns-1, 0))) }, lo},
		{"deleted key back", func(db *DB) error {
			d := crashDeletions(txns - 1)[0]
			return db.Set([]byte(crashKey(0, d, 0)), crashValue(0, d, 0))
		}, lo},
		{"wrong value", func(db *DB) error { return db.Set([]byte(crashKey(0, 3, -1)), []byte("9")) }, lo},
		{"rolled-back key", func(db *DB) error { return db.Set([]byte("r/0/000003"), nil) }, lo},
		{"offset below the acknowledged", func(db *DB) error { return nil }, []int{txns, txns - 1}},
		{"unknown offset", func(db *DB) error {
			tx := db.Begin(nil)
			tx.SetOffset("x", 1)
			return tx.Commit()
		}, lo},
	}
	for _, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			db := open(t)
			if err := d.do(db); err != nil {
				t.Fatal(err)
			}
			if _, err := checkWorkload(db, parts, d.lo, []int{txns, txns}); err == nil {
				t.Fatal("checkWorkload found nothing wrong")
			}
		})
	}
}
