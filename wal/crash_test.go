package wal

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
)

// TestPowerCut writes a log to a vfs.MemFS with a mix of synced and unsynced
// flushes and, at random points, reads the log of a crash clone (a simulated
// power cut) as the newest log. Whatever survives of the unsynced bytes
// (lost, torn or trashed blocks, in any order), the read ends in io.EOF
// (never corruption: every chunk records a synced offset no greater than
// the synced offset at the cut, and synced bytes survive intact), after
// every record synced before the cut. Keeping only synced bytes ends
// exactly at the synced offset; keeping every byte loses nothing.
func TestPowerCut(t *testing.T) {
	rng := newRand(t)
	configs := []vfs.CrashCloneConfig{
		{}, {UnsyncedPct: 100}, {UnsyncedPct: 50}, {UnsyncedPct: 100, TornPct: 30},
		{UnsyncedPct: 50, TornPct: 10, TrashPct: 5}, {UnsyncedPct: 70, TrashPct: 50},
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
	torn := make([]int, len(configs))
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
		written, _ := f.Size()
		for i, cfg := range configs {
			cfg.Rand = rand.New(rand.NewPCG(rng.Uint64(), 0))
			res := readLog(bytes.NewReader(readFile(t, fs.CrashClone(cfg), "000007.log")),
				testLogNum, true)
			if res.err != io.EOF {
				t.Fatalf("config %d: %v after %d records, want EOF", i, res.err, len(res.recs))
			}
			synced := completeBefore(ends, w.SyncedOffset())
			if len(res.recs) < synced {
				t.Fatalf("config %d: %d records after the cut, %d were synced",
					i, len(res.recs), synced)
			}
			checkRecords(t, res.recs, recs[:len(res.recs)])
			if len(res.recs) < completeBefore(ends, written) {
				torn[i]++
			}
			switch {
			case i == 0 && len(res.recs) != synced:
				t.Fatalf("synced bytes only: %d records, want %d", len(res.recs), synced)
			case i == 1 && len(res.recs) != completeBefore(ends, written):
				t.Fatalf("every byte kept: %d records, want %d", len(res.recs), completeBefore(ends, written))
			}
		}
	}
	t.Logf("clones that lost written records (a torn tail), per config: %v", torn)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDamageSyncedVsUnsynced writes a log with a synced region and an
// unsynced one and damages single bytes and whole 4 KiB pages: damage in
// unsynced bytes, even with valid chunks after it, reads as a torn tail
// ending at the last complete record before it; damage in synced bytes,
// with a later chunk that records them synced, is corruption at the
// damaged chunk's offset. Once a later sync covers the unsynced region,
// damage there is corruption too.
func TestDamageSyncedVsUnsynced(t *testing.T) {
	rng := newRand(t)
	fs := vfs.NewMem()
	f, err := fs.Create("000007.log")
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(f, testLogNum)
	var recs [][]byte
	var ends []int64
	add := func(sync bool, sizes ...int) {
		for _, rec := range randRecords(rng, sizes...) {
			end, err := w.Append(rec)
			if err == nil {
				err = w.Flush(end, sync)
			}
			if err != nil {
				t.Fatal(err)
			}
			recs, ends = append(recs, rec), append(ends, end)
		}
	}
	add(true, 300, 5000, 40000, 7)       // records 0..3, synced
	add(false, 100, 9000, 50000, 3, 200) // records 4..8, written only
	syncedOff := w.SyncedOffset()
	if syncedOff != ends[3] {
		t.Fatalf("synced offset %d, want %d", syncedOff, ends[3])
	}
	data := readFile(t, fs, "000007.log")
	start := func(k int) int64 { // offset of record k
		if k == 0 {
			return 0
		}
		return ends[k-1]
	}
	type damage struct {
		name    string
		lo, hi  int64 // bytes to damage
		corrupt bool  // in the newest log
	}
	page := func(off int64) (int64, int64) { lo := off &^ 4095; return lo, lo + 4096 }
	p6lo, p6hi := page(start(6) + 20000)
	damages := []damage{
		{"header byte of the first unsynced record", start(4) + 5, start(4) + 6, false},
		{"payload byte of an unsynced record", start(5) + 4000, start(5) + 4001, false},
		{"lost page inside an unsynced record", p6lo, p6hi, false},
		{"header byte of a synced record", start(1) + 2, start(1) + 3, true},
		{"payload byte of a synced record", start(2) + 30000, start(2) + 30001, true},
		{"last synced record", ends[3] - 1, ends[3], true},
	}
	check := func(data []byte, d damage, corrupt bool) {
		t.Helper()
		bad := bytes.Clone(data)
		for i := d.lo; i < d.hi; i++ {
			if d.hi-d.lo == 1 {
				bad[i] ^= 0x41
			} else {
				bad[i] = 0
			}
		}
		cs := chunksOf(data)
		c := cs[chunkAt(cs, d.lo)]
		k := completeBefore(ends, c.off) // the damaged chunk's record
		rd := NewReader(bytes.NewReader(bad), testLogNum, "000007.log", true)
		for i := range k {
			rec, err := rd.Next()
			if err != nil || !bytes.Equal(rec, recs[i]) {
				t.Fatalf("%s: record %d: %v", d.name, i, err)
			}
		}
		_, err := rd.Next()
		switch {
		case !corrupt && err != io.EOF:
			t.Fatalf("%s: %v after %d records, want EOF", d.name, err, k)
		case !corrupt && rd.Offset() != start(k):
			t.Fatalf("%s: Offset %d, want %d", d.name, rd.Offset(), start(k))
		case corrupt && (!isCorruption(err) || !strings.Contains(err.Error(), "000007.log: ") ||
			!strings.Contains(err.Error(), fmt.Sprintf(" at offset %d (synced", c.off))):
			t.Fatalf("%s: %v after %d records, want corruption at offset %d", d.name, err, k, c.off)
		}
		res := readLog(bytes.NewReader(bad), testLogNum, false)
		if !isCorruption(res.err) || len(res.recs) != k {
			t.Fatalf("%s, older log: %d records, %v", d.name, len(res.recs), res.err)
		}
	}
	for _, d := range damages {
		check(data, d, d.corrupt)
	}
	// A later sync makes the written records synced, and the chunks of the
	// record framed after it say so (those of the record it carried still
	// record the old synced offset).
	add(true, 10)
	data = readFile(t, fs, "000007.log")
	check(data, damages[0], false)
	add(false, 10)
	data = readFile(t, fs, "000007.log")
	for _, d := range damages {
		check(data, d, true)
	}
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
