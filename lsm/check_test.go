package lsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	d := openTest(t, dir, &Options{MemTableSize: 64 << 10, NoSync: true})
	for i := 0; i < 3000; i++ {
		must(t, d.Set([]byte(fmt.Sprintf("k%05d", i)), make([]byte, 100)))
		if i%1000 == 999 {
			must(t, d.Flush())
		}
	}
	must(t, d.Compact())
	for i := 0; i < 100; i++ { // a WAL tail to replay
		must(t, d.Set([]byte(fmt.Sprintf("k%05d", i)), []byte("new")))
	}
	if _, err := Check(dir, nil); err == nil {
		t.Fatal("Check of an open store succeeded")
	}
	must(t, d.Close())
	r, err := Check(dir, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	if r.Tables == 0 || r.Entries < 3000 || r.WALRecords != 100 {
		t.Fatalf("report of a store with 3000 keys in tables and 100 in the WAL:\n%s", r)
	}
	t.Logf("\n%s", r)

	// An orphan table and a flipped byte in a table are both reported.
	must(t, os.WriteFile(filepath.Join(dir, tableFileName(999999)), []byte("junk"), 0o644))
	tables, _ := filepath.Glob(filepath.Join(dir, "*"+tableSuffix))
	victim := tables[0]
	b, err := os.ReadFile(victim)
	must(t, err)
	b[len(b)/3] ^= 0x40
	must(t, os.WriteFile(victim, b, 0o644))
	r, err = Check(dir, nil)
	if !errors.Is(err, ErrCorruption) {
		t.Fatalf("Check of a damaged store: %v", err)
	}
	report := r.String()
	if !strings.Contains(report, "999999.sst: table not named by the manifest") || !strings.Contains(report, filepath.Base(victim)) {
		t.Fatalf("report misses a problem:\n%s", report)
	}
}

// TestCheckAfterBusyClose closes stores while flushes and compactions run
// and checks that Close leaves no file the manifest does not name (a
// compaction that lands during Close deletes its inputs).
func TestCheckAfterBusyClose(t *testing.T) {
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		d := openTest(t, dir, &Options{MemTableSize: 64 << 10, NoSync: true, L0CompactionThreshold: 2})
		for j := 0; j < 5000; j++ {
			must(t, d.Set([]byte(fmt.Sprintf("k%05d", j)), make([]byte, 100)))
		}
		must(t, d.Close())
		if r, err := Check(dir, nil); err != nil {
			t.Fatalf("%v\n%s", err, r)
		}
	}
}
