package lsm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/manifest"
	"github.com/stratadb/strata/wal"
)

// Checks of the files of a store directory: no table the manifest names is
// missing, and once a DB is open and idle no file is left that the store
// does not use (leaked tables, WALs or manifests).

// storeListing is a store directory's files by kind.
type storeListing struct {
	tables    map[uint64]int64 // number → size
	logs      []uint64         // sorted
	manifests []uint64         // sorted
	current   bool
	others    []string // every other name
}

// listStoreDir lists dir.
func listStoreDir(dir string) (storeListing, error) {
	l := storeListing{tables: map[uint64]int64{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return l, err
	}
	for _, e := range entries {
		name := e.Name()
		if n, ok := parseNumbered(name, tableSuffix); ok {
			fi, err := e.Info()
			if err != nil {
				return l, err
			}
			l.tables[n] = fi.Size()
		} else if n, ok := parseLogFileName(name); ok {
			l.logs = append(l.logs, n)
		} else if n, ok := manifest.ParseFileName(name); ok {
			l.manifests = append(l.manifests, n)
		} else if name == manifest.CurrentName {
			l.current = true
		} else {
			l.others = append(l.others, name)
		}
	}
	slices.Sort(l.logs)
	slices.Sort(l.manifests)
	return l, nil
}

// loadStoreManifest loads the manifest CURRENT names in dir, with its own
// reader of the record framing (torn tail = end, as recovery reads it).
// The caller unrefs the version.
func loadStoreManifest(dir string) (*manifest.Version, manifest.State, uint64, error) {
	return manifest.Load(vfs.Default, dir, func(f vfs.File, num uint64, name string) manifest.RecordReader {
		return wal.NewReader(f, num, name, true)
	})
}

// manifestTables returns the tables of v: number → size.
func manifestTables(v *manifest.Version) map[uint64]uint64 {
	m := map[uint64]uint64{}
	for level := range manifest.NumLevels {
		for _, f := range v.Files(level) {
			m[f.FileNum] = f.Size
		}
	}
	return m
}

// deepestLevel returns the deepest level of v holding a table (-1: none).
func deepestLevel(v *manifest.Version) int {
	deepest := -1
	for level := range manifest.NumLevels {
		if v.NumFiles(level) > 0 {
			deepest = level
		}
	}
	return deepest
}

// crashLeftovers counts what a killed process left in a store directory
// that recovery must clean up.
type crashLeftovers struct {
	orphanTables int // tables on disk the manifest does not name
	// cutWrites and cutCompactions count the directories holding orphan
	// tables: at least one (a flush or compaction was cut), and at least
	// two (a compaction was: a flush writes one table, one at a time).
	cutWrites, cutCompactions int
	oldLogs                   int // WALs below the manifest's log number
	oldManifests              int // manifests CURRENT does not name
	currentTmp                int // a CURRENT.tmp
	deepest                   int // deepest level holding a table
}

func (c *crashLeftovers) add(o crashLeftovers) {
	c.orphanTables += o.orphanTables
	c.cutWrites += o.cutWrites
	c.cutCompactions += o.cutCompactions
	c.oldLogs += o.oldLogs
	c.oldManifests += o.oldManifests
	c.currentTmp += o.currentTmp
	c.deepest = max(c.deepest, o.deepest)
}

// checkStoreFilesClosed fails t unless storeFilesClosed accepts dir, and
// returns what recovery will have to remove.
func checkStoreFilesClosed(t testing.TB, dir string) crashLeftovers {
	t.Helper()
	left, err := storeFilesClosed(dir)
	if err != nil {
		t.Fatal(err)
	}
	return left
}

// storeFilesClosed checks a closed (or killed) store directory: the
// manifest CURRENT names loads, and every table it names exists with the
// size it records. A directory without CURRENT must hold no WAL and no
// table (the store was never created). It returns what recovery will have
// to remove.
func storeFilesClosed(dir string) (crashLeftovers, error) {
	left := crashLeftovers{deepest: -1}
	l, err := listStoreDir(dir)
	if err != nil {
		return left, err
	}
	v, s, num, err := loadStoreManifest(dir)
	if errors.Is(err, fs.ErrNotExist) && !l.current {
		if len(l.tables) > 0 || len(l.logs) > 0 {
			return left, fmt.Errorf("%s has no CURRENT but %d tables and WALs %v", dir, len(l.tables), l.logs)
		}
		return left, nil
	}
	if err != nil {
		return left, fmt.Errorf("loading the manifest of %s: %w", dir, err)
	}
	defer v.Unref()
	live := manifestTables(v)
	for n, size := range live {
		got, ok := l.tables[n]
		switch {
		case !ok:
			return left, fmt.Errorf("%s: table %s of the manifest is missing (manifest %s, %s)", dir, tableFileName(n), manifest.FileName(num), s)
		case uint64(got) != size:
			return left, fmt.Errorf("%s: table %s holds %d bytes, the manifest says %d", dir, tableFileName(n), got, size)
		}
	}
	for n := range l.tables {
		if _, ok := live[n]; !ok {
			left.orphanTables++
		}
	}
	if left.orphanTables > 0 {
		left.cutWrites++
	}
	if left.orphanTables > 1 {
		left.cutCompactions++
	}
	for _, n := range l.logs {
		if n < s.LogNumber {
			left.oldLogs++
		}
	}
	left.oldManifests = len(l.manifests) - 1
	for _, name := range l.others {
		switch name {
		case lockFileName:
		case "CURRENT.tmp":
			left.currentTmp++
		default:
			return left, fmt.Errorf("%s: unexpected file %s", dir, name)
		}
	}
	left.deepest = deepestLevel(v)
	return left, nil
}

// checkStoreFilesOpen fails t unless storeFilesOpen accepts d.
func checkStoreFilesOpen(t testing.TB, d *DB) {
	t.Helper()
	if err := storeFilesOpen(d); err != nil {
		t.Fatal(err)
	}
}

// storeFilesOpen waits until d has no flush or compaction running and no
// memtable waiting to be flushed, and checks that its directory then holds
// exactly the files the store uses: the tables of the current version with
// their sizes, one manifest (the one in use, which CURRENT names), the WAL
// of the active memtable and none below the log number, and the LOCK file.
// d must have no open iterator (an old read state keeps obsolete tables on
// disk).
func storeFilesOpen(d *DB) error {
	d.mu.Lock()
	for d.mu.flushing || d.mu.compacting || len(d.mu.imm) > 0 {
		if err := d.bgBlockedLocked(); err != nil {
			d.mu.Unlock()
			return fmt.Errorf("waiting for background work: %w", err)
		}
		d.mu.cond.Wait()
	}
	// Nothing writes, creates or deletes a file while d.mu is held and no
	// flush or compaction runs.
	live := manifestTables(d.mu.current)
	state, active, num := d.mu.state, d.mu.activeLog, d.mu.manifest.FileNum()
	l, lerr := listStoreDir(d.dirname)
	cur, err := manifest.ReadCurrent(vfs.Default, d.dirname)
	d.mu.Unlock()
	dir := filepath.Base(d.dirname)
	if err = errors.Join(lerr, err); err != nil {
		return fmt.Errorf("%s: listing the directory and reading CURRENT: %w", dir, err)
	}
	if cur != num || !slices.Equal(l.manifests, []uint64{num}) {
		return fmt.Errorf("%s: manifest in use %d, CURRENT names %d, manifests on disk %v", dir, num, cur, l.manifests)
	}
	for n, size := range live {
		if got, ok := l.tables[n]; !ok || uint64(got) != size {
			return fmt.Errorf("%s: table %s of the current version: on disk %v (%d bytes), want %d bytes", dir, tableFileName(n), ok, got, size)
		}
	}
	for n := range l.tables {
		if _, ok := live[n]; !ok {
			return fmt.Errorf("%s: leaked table %s: on disk, in no version (state %s)", dir, tableFileName(n), state)
		}
	}
	for _, n := range l.logs {
		if n < state.LogNumber {
			return fmt.Errorf("%s: leaked WAL %s below the log number %d", dir, logFileName(n), state.LogNumber)
		}
	}
	if !slices.Equal(l.logs, []uint64{active}) {
		return fmt.Errorf("%s: WALs %v with nothing to flush; want only the active one %d (log number %d)", dir, l.logs, active, state.LogNumber)
	}
	if !l.current || !slices.Equal(l.others, []string{lockFileName}) {
		return fmt.Errorf("%s: CURRENT present %v, other files %v; want CURRENT and %s", dir, l.current, l.others, lockFileName)
	}
	return nil
}

// TestStoreFileChecks checks that the file checks of the crash test accept
// a clean store and catch a leaked table, WAL or manifest, and a missing
// or truncated table.
func TestStoreFileChecks(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, crashOptions(false))
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s < 40; s++ {
		if err := db.Set([]byte(crashKey(0, s, 0)), crashValue(0, s, 0)); err != nil {
			t.Fatal(err)
		}
		if s%10 == 9 {
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := storeFilesOpen(db); err != nil {
		t.Fatalf("clean store: %v", err)
	}
	db.mu.Lock()
	live := manifestTables(db.mu.current)
	logNum := db.mu.state.LogNumber
	db.mu.Unlock()
	if len(live) == 0 || logNum < 2 {
		t.Fatalf("%d tables, log number %d: nothing to check", len(live), logNum)
	}
	var table uint64
	for table = range live {
		break
	}
	stray := []string{tableFileName(999_999), logFileName(logNum - 1), manifest.FileName(999_998), "stray"}
	for _, name := range stray {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := storeFilesOpen(db); err == nil {
			t.Errorf("open store with a stray %s passes", name)
		}
		os.Remove(filepath.Join(dir, name))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	left, err := storeFilesClosed(dir)
	if err != nil || left.orphanTables != 0 {
		t.Fatalf("clean closed store: %v, %d orphan tables", err, left.orphanTables)
	}
	name := filepath.Join(dir, tableFileName(table))
	if err := os.Truncate(name, int64(live[table])-1); err != nil {
		t.Fatal(err)
	}
	if _, err := storeFilesClosed(dir); err == nil {
		t.Errorf("closed store with a truncated table passes")
	}
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	if _, err := storeFilesClosed(dir); err == nil {
		t.Errorf("closed store with a missing table passes")
	}
}
