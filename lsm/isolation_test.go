package lsm

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// TestNoFracturedReads runs writers that commit ten keys with one value per
// commit while ReadCommitted readers check, through point-in-time iterators,
// that the ten keys always carry one value: no reader ever sees part of a
// commit. ReadUncommitted readers run at the same time against the open
// transactions (-race checks the sharing).
func TestNoFracturedReads(t *testing.T) {
	d := openTest(t, "", &Options{InMemory: true, MemTableSize: 256 << 10})
	const groups, keys = 4, 10
	rounds := 300
	if testing.Short() {
		rounds = 60
	}
	var stop atomic.Bool
	var writers, readers sync.WaitGroup
	for g := 0; g < groups; g++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for r := 1; r <= rounds; r++ {
				tx := d.Begin(nil)
				v := []byte(fmt.Sprintf("g%d-r%d", g, r))
				for k := 0; k < keys; k++ {
					if err := tx.Set([]byte(fmt.Sprintf("g%d/k%d", g, k)), v); err != nil {
						t.Error(err)
						return
					}
					// Read-your-writes holds at every step.
					if got, err := tx.Get([]byte(fmt.Sprintf("g%d/k%d", g, k))); err != nil || string(got) != string(v) {
						t.Errorf("read-your-writes: %q %v", got, err)
						return
					}
				}
				tx.SetOffset(fmt.Sprint("g", g), int64(r))
				var err error
				if r%7 == 0 {
					err = tx.Rollback()
				} else {
					err = tx.Commit()
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var checks atomic.Int64
	for i := 0; i < 4; i++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			level := IsolationLevel(i % 2)
			for !stop.Load() {
				for g := 0; g < groups; g++ {
					checkGroup(t, d.Reader(level), level, g, keys)
					checks.Add(1)
				}
			}
		}()
	}
	writers.Wait()
	stop.Store(true)
	readers.Wait()
	for g := 0; g < groups; g++ {
		off, err := d.CommittedOffset(fmt.Sprint("g", g))
		want := int64(rounds)
		if rounds%7 == 0 {
			want--
		}
		if err != nil || off != want {
			t.Fatalf("group %d offset %d %v, want %d", g, off, err, want)
		}
	}
	t.Logf("%d group checks", checks.Load())
}

// checkGroup reads group g's keys through one iterator. ReadCommitted must
// see one committed value (never a rolled-back round); ReadUncommitted may
// see a transaction in progress, so it only checks the values are
// well-formed.
func checkGroup(t *testing.T, r Reader, level IsolationLevel, g, keys int) {
	prefix := fmt.Sprintf("g%d/", g)
	it, err := r.NewIterator(&IterOptions{LowerBound: []byte(prefix), UpperBound: []byte(fmt.Sprintf("g%d0", g))})
	if err != nil {
		t.Error(err)
		return
	}
	defer it.Close()
	var first string
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		v := string(it.Value())
		if level == ReadCommitted {
			if n == 0 {
				first = v
			} else if v != first {
				t.Errorf("fractured read: %s=%s but an earlier key holds %s", it.Key(), v, first)
			}
			var gg, round int
			fmt.Sscanf(v, "g%d-r%d", &gg, &round)
			if round%7 == 0 {
				t.Errorf("read a rolled-back value %s", v)
			}
		} else if len(v) < 4 || v[:len(prefix)-1] != prefix[:len(prefix)-1] {
			t.Errorf("bad value %q", v)
		}
		n++
	}
	if level == ReadCommitted && n != 0 && n != keys {
		t.Errorf("group %d: %d of %d keys visible", g, n, keys)
	}
	if _, err := r.Get([]byte(prefix + "k0")); err != nil && !errors.Is(err, ErrNotFound) {
		t.Error(err)
	}
}

// TestReadUncommittedLatestWriteWins checks that, of two open transactions
// writing one key, a ReadUncommitted reader sees the later write.
func TestReadUncommittedLatestWriteWins(t *testing.T) {
	d := openTest(t, "", &Options{InMemory: true})
	ru := d.Reader(ReadUncommitted)
	a, b := d.Begin(nil), d.Begin(nil)
	a.Set([]byte("k"), []byte("a1"))
	b.Set([]byte("k"), []byte("b1"))
	mustGet(t, ru, "k", "b1")
	a.Set([]byte("k"), []byte("a2"))
	mustGet(t, ru, "k", "a2")
	if got := scan(t, ru, nil); got != "k=a2 " {
		t.Fatalf("scan %q", got)
	}
	b.Delete([]byte("k"))
	mustGet(t, ru, "k", "")
	b.Rollback()
	mustGet(t, ru, "k", "a2")
	mustGet(t, d, "k", "")
	a.Commit()
	mustGet(t, d, "k", "a2")
	for i := 0; i < 3; i++ {
		tx := d.Begin(nil)
		tx.Set([]byte("n"+strconv.Itoa(i)), nil)
		defer tx.Rollback()
	}
	if got := scan(t, ru, nil); got != "k=a2 n0= n1= n2= " {
		t.Fatalf("scan %q", got)
	}
}

// historySize returns the size of a concurrent history: the flag's value
// if set, else short with -short, else def.
func historySize(flagValue, short, def int) int {
	switch {
	case flagValue > 0:
		return flagValue
	case testing.Short():
		return short
	}
	return def
}

// onBusyStores runs run on disk, on a store so small that flushes and
// compactions run all the time (synced unless noSync), and in memory.
func onBusyStores(t *testing.T, noSync bool, run func(t *testing.T, dir string, o *Options)) {
	t.Run("disk", func(t *testing.T) {
		run(t, t.TempDir(), &Options{
			NoSync:                noSync,
			MemTableSize:          64 << 10,
			L0CompactionThreshold: 2,
			TargetFileSize:        8 << 10,
			LevelBaseBytes:        32 << 10,
			LevelMultiplier:       2,
			BlockSize:             1 << 10,
			BlockCacheSize:        64 << 10,
			MaxOpenTables:         8,
		})
	})
	t.Run("memory", func(t *testing.T) {
		run(t, "", &Options{InMemory: true, MemTableSize: 64 << 10, L0CompactionThreshold: 2})
	})
}
