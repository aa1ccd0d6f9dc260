package wal

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
)

// TestPowerCut writes a log to a vfs.MemFS with a mix of synced and unsynced
// flushes and, at random points, reads the log of a crash clone (a simulated
// power cut) as the newest log. Whatever survives of the unsynced bytes,
// every record synced before the cut comes back, followed by io.EOF or, when
// the clone has a hole in the unsynced bytes with a valid chunk after it,
// by corruption. Keeping only synced bytes ends exactly at the synced
// offset; keeping every byte loses nothing.
//
// A trashed page (TrashPct) is replaced whole, synced bytes included, so
// with trash only the records before the page holding the synced offset
// are sure to survive: the log does not pad synced groups to pages.
func TestPowerCut(t *testing.T) {
	rng := newRand(t)
	configs := []vfs.CrashCloneConfig{
		{}, {UnsyncedPct: 100}, {UnsyncedPct: 50}, {UnsyncedPct: 100, TornPct: 30},
		{UnsyncedPct: 50, TornPct: 10, TrashPct: 5},
	}
	fs := vfs.NewMem()
	f, err := fs.Create("000007.log")
	if err != nil {
		t.Fatal(err)
	}
	syncRoot(t, fs)
	w := NewWriter(f, testLogNum)
	var recs [][]byte
	var ends []int64
	holes := make([]int, len(configs))
	for range 300 {
		rec := randRecords(rng, rng.Intn(6000))[0]
		end, err := w.Append(rec)
		if err == nil && rng.Intn(3) == 0 {
			err = w.Flush(end, rng.Intn(2) == 0)
		}
		if err != nil {
			t.Fatal(err)
		}
		recs, ends = append(recs, rec), append(ends, end)
		if rng.Intn(10) != 0 {
			continue
		}
		for i, cfg := range configs {
			cfg.Rand = rand.New(rand.NewPCG(rng.Uint64(), 0))
			res := readLog(bytes.NewReader(readFile(t, fs.CrashClone(cfg), "000007.log")),
				testLogNum, true)
			syncedOff := w.SyncedOffset()
			if cfg.TrashPct > 0 {
				syncedOff &^= vfs.DefaultCrashBlockSize - 1
			}
			synced := completeBefore(ends, syncedOff)
			if len(res.recs) < synced {
				t.Fatalf("config %d: %d records after the cut, %d were synced: %v",
					i, len(res.recs), synced, res.err)
			}
			checkRecords(t, res.recs, recs[:len(res.recs)])
			written, _ := f.Size()
			switch {
			case isCorruption(res.err) && i >= 2:
				holes[i]++
			case res.err != io.EOF:
				t.Fatalf("config %d: %v", i, res.err)
			case i == 0 && len(res.recs) != synced:
				t.Fatalf("synced bytes only: %d records, want %d", len(res.recs), synced)
			case i == 1 && len(res.recs) != completeBefore(ends, written):
				t.Fatalf("every byte kept: %d records, want %d", len(res.recs), completeBefore(ends, written))
			}
		}
	}
	t.Logf("clones reported as corruption (a hole in unsynced bytes), per config: %v", holes)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// syncRoot syncs the root directory of fs, so that new files survive a cut.
func syncRoot(t *testing.T, fs vfs.FS) {
	d, err := fs.OpenDir("/")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	d.Close()
}
