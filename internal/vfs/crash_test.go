package vfs

import (
	"bytes"
	"errors"
	"maps"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
)

// newSyncedMem returns a MemFS with a durable directory /db.
func newSyncedMem(t *testing.T) *MemFS {
	t.Helper()
	m := NewMem()
	if err := m.MkdirAll("db", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(m, "/"); err != nil {
		t.Fatal(err)
	}
	return m
}

func exists(t *testing.T, fs FS, name string) bool {
	t.Helper()
	_, err := fs.Stat(name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func TestCrashNewFileWithoutDirSyncVanishes(t *testing.T) {
	m := newSyncedMem(t)
	if err := WriteFile(m, "db/f", []byte("synced data")); err != nil {
		t.Fatal(err)
	}
	if exists(t, m.DropUnsynced(), "db/f") {
		t.Fatal("file created without a dir sync survived")
	}
	if err := SyncDir(m, "db"); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, m.DropUnsynced(), "db/f"); string(got) != "synced data" {
		t.Fatalf("after dir sync: %q", got)
	}
}

func TestCrashUnsyncedDataLost(t *testing.T) {
	m := newSyncedMem(t)
	mustWrite(t, m, "db/f", []byte("never synced"))
	if err := SyncDir(m, "db"); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, m.DropUnsynced(), "db/f"); len(got) != 0 {
		t.Fatalf("unsynced data survived: %q", got)
	}
	// Create on an existing synced file truncates it, unsynced.
	if err := WriteFile(m, "db/f", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, m, "db/f", []byte("v2 unsynced"))
	if got := mustRead(t, m.DropUnsynced(), "db/f"); string(got) != "v1" {
		t.Fatalf("after unsynced re-create: %q, want v1", got)
	}
}

func TestCrashUnsyncedRenameVanishes(t *testing.T) {
	m := newSyncedMem(t)
	if err := WriteFile(m, "db/tmp", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(m, "db/CURRENT", []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(m, "db"); err != nil {
		t.Fatal(err)
	}
	if err := m.Rename("db/tmp", "db/CURRENT"); err != nil {
		t.Fatal(err)
	}
	c := m.DropUnsynced()
	if got := mustRead(t, c, "db/CURRENT"); string(got) != "old" {
		t.Fatalf("CURRENT = %q after an unsynced rename", got)
	}
	if !exists(t, c, "db/tmp") {
		t.Fatal("tmp vanished after an unsynced rename")
	}
	if err := SyncDir(m, "db"); err != nil {
		t.Fatal(err)
	}
	c = m.DropUnsynced()
	if got := mustRead(t, c, "db/CURRENT"); string(got) != "new" || exists(t, c, "db/tmp") {
		t.Fatalf("after dir sync: CURRENT = %q, tmp exists = %v", got, exists(t, c, "db/tmp"))
	}
}

func TestCrashUnsyncedRemoveUndone(t *testing.T) {
	m := newSyncedMem(t)
	if err := WriteFile(m, "db/f", []byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(m, "db"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove("db/f"); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, m.DropUnsynced(), "db/f"); string(got) != "data" {
		t.Fatalf("removed file after crash = %q", got)
	}
}

func TestCrashMkdirNeedsParentSync(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	if exists(t, m.DropUnsynced(), "a") {
		t.Fatal("directory survived without a sync of its parent")
	}
	if err := SyncDir(m, "/"); err != nil {
		t.Fatal(err)
	}
	c := m.DropUnsynced()
	if !exists(t, c, "a") || exists(t, c, "a/b") {
		t.Fatalf("after syncing /: a exists %v, a/b exists %v", exists(t, c, "a"), exists(t, c, "a/b"))
	}
}

func TestCrashUnsyncedTruncate(t *testing.T) {
	m := newSyncedMem(t)
	if err := WriteFile(m, "db/f", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(m, "db"); err != nil {
		t.Fatal(err)
	}
	withFile(t, m, "db/f", func(f File) error { return f.Truncate(3) })
	if got := mustRead(t, m.DropUnsynced(), "db/f"); string(got) != "0123456789" {
		t.Fatalf("after unsynced truncate: %q", got)
	}
	if got := mustRead(t, m.CrashClone(CrashCloneConfig{UnsyncedPct: 100}), "db/f"); string(got) != "012" {
		t.Fatalf("100%% clone after truncate: %q", got)
	}
}

// TestCrashRenameAtomic checks that with a partial UnsyncedPct, an
// unsynced rename over an existing file is all or nothing.
func TestCrashRenameAtomic(t *testing.T) {
	m := newSyncedMem(t)
	for _, f := range []struct{ name, data string }{{"db/CURRENT", "old"}, {"db/tmp", "new"}} {
		if err := WriteFile(m, f.name, []byte(f.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := SyncDir(m, "db"); err != nil {
		t.Fatal(err)
	}
	if err := m.Rename("db/tmp", "db/CURRENT"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, m, "db/other", nil)
	rng := rand.New(rand.NewPCG(testSeed(t), 1))
	seen := map[string]bool{}
	for range 200 {
		c := m.CrashClone(CrashCloneConfig{UnsyncedPct: 50, Rand: rng})
		cur := string(mustRead(t, c, "db/CURRENT"))
		tmp := exists(t, c, "db/tmp")
		if (cur == "old") != tmp || (cur != "old" && cur != "new") {
			t.Fatalf("half a rename: CURRENT = %q, tmp exists = %v", cur, tmp)
		}
		seen[cur] = true
	}
	if !seen["old"] || !seen["new"] {
		t.Fatalf("200 clones at 50%% saw only %v", seen)
	}
}

// TestCrashPartialBlocks checks that every block of a clone at a partial
// UnsyncedPct is the synced block or the current one.
func TestCrashPartialBlocks(t *testing.T) {
	const bs = 512
	m := newSyncedMem(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 2))
	old := bytes.Repeat([]byte{'o'}, 8*bs)
	if err := WriteFile(m, "db/f", old); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(m, "db"); err != nil {
		t.Fatal(err)
	}
	cur := bytes.Repeat([]byte{'n'}, 12*bs+100)
	mustWrite(t, m, "db/f", cur)
	kinds := map[string]bool{}
	for range 100 {
		got := mustRead(t, m.CrashClone(CrashCloneConfig{UnsyncedPct: 50, BlockSize: bs, Rand: rng}), "db/f")
		if len(got) > len(cur) {
			t.Fatalf("clone longer than the file: %d", len(got))
		}
		for lo := 0; lo < len(got); lo += bs {
			blk := got[lo:min(lo+bs, len(got))]
			n, o, z := bytes.Count(blk, []byte{'n'}), bytes.Count(blk, []byte{'o'}), bytes.Count(blk, []byte{0})
			switch {
			case n == len(blk):
				kinds["new"] = true
			case o == len(blk) && lo < len(old):
				kinds["old"] = true
			case z == len(blk) && lo >= len(old):
				kinds["zero gap"] = true
			default:
				t.Fatalf("block at %d mixes bytes: n=%d o=%d zero=%d", lo, n, o, z)
			}
		}
	}
	if len(kinds) != 3 {
		t.Fatalf("100 clones saw block kinds %v, want new, old and zero gap", kinds)
	}
}

// TestCrashTornAndTrash checks that torn blocks are prefixes of the new
// bytes over the old ones and trashed blocks differ from both.
func TestCrashTornAndTrash(t *testing.T) {
	const bs = 256
	m := newSyncedMem(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 3))
	old := bytes.Repeat([]byte{'o'}, 4*bs)
	if err := WriteFile(m, "db/f", old); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(m, "db"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, m, "db/f", bytes.Repeat([]byte{'n'}, 4*bs))
	torn := mustRead(t, m.CrashClone(CrashCloneConfig{UnsyncedPct: 100, TornPct: 100, BlockSize: bs, Rand: rng}), "db/f")
	if len(torn) != len(old) {
		t.Fatalf("torn clone has %d bytes, want %d", len(torn), len(old))
	}
	for lo := 0; lo < len(torn); lo += bs {
		blk := torn[lo : lo+bs]
		k := bytes.Count(blk, []byte{'n'})
		if !bytes.Equal(blk[:k], bytes.Repeat([]byte{'n'}, k)) || bytes.Count(blk[k:], []byte{'o'}) != bs-k || k == bs {
			t.Fatalf("block at %d is not a strict torn prefix: %q", lo, blk)
		}
	}
	trash := mustRead(t, m.CrashClone(CrashCloneConfig{UnsyncedPct: 100, TrashPct: 100, BlockSize: bs, Rand: rng}), "db/f")
	if len(trash) != len(old) || bytes.Count(trash, []byte{'n'}) > bs || bytes.Count(trash, []byte{'o'}) > bs {
		t.Fatalf("trashed clone looks like real data: %q", trash)
	}
}

// TestCrashDamageKeepsSyncedBytes checks the powersafe-overwrite model:
// torn and trashed blocks keep every synced byte still unchanged, both
// the synced prefix of an appended file (whose last synced block is only
// partly synced) and the unchanged bytes of a block overwritten in place.
func TestCrashDamageKeepsSyncedBytes(t *testing.T) {
	const bs = 256
	m := newSyncedMem(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 6))
	synced := bytes.Repeat([]byte{'o'}, 2*bs+100) // block 2 is partly synced
	if err := WriteFile(m, "db/f", synced); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(m, "db"); err != nil {
		t.Fatal(err)
	}
	// Overwrite block 0 in place with 'n' at odd offsets only, and append
	// 'n' up to 5 blocks.
	withFile(t, m, "db/f", func(f File) error {
		over := bytes.Clone(synced)
		for i := 1; i < bs; i += 2 {
			over[i] = 'n'
		}
		_, err := f.Write(append(over, bytes.Repeat([]byte{'n'}, 5*bs-len(synced))...))
		return err
	})
	cur := mustRead(t, m, "db/f")
	if len(cur) != 5*bs {
		t.Fatalf("file has %d bytes, want %d", len(cur), 5*bs)
	}
	seen := map[string]bool{}
	for range 200 {
		cfg := CrashCloneConfig{UnsyncedPct: 100, TornPct: 50, TrashPct: 50, BlockSize: bs, Rand: rng}
		got := mustRead(t, m.CrashClone(cfg), "db/f")
		if len(got) < len(synced) || len(got) > len(cur) {
			t.Fatalf("clone has %d bytes, synced %d, current %d", len(got), len(synced), len(cur))
		}
		for i := range synced {
			if cur[i] == synced[i] && got[i] != synced[i] {
				t.Fatalf("unchanged synced byte %d is %q in the clone", i, got[i])
			}
		}
		switch tail := got[len(synced):]; {
		case len(got) < len(cur):
			seen["torn"] = true
		case bytes.Count(tail, []byte{'n'}) < len(tail)-bs/2:
			seen["trashed"] = true
		}
	}
	if len(seen) != 2 {
		t.Fatalf("200 clones saw %v, want torn and trashed ones", seen)
	}
}

func TestCrashCloneDeterministic(t *testing.T) {
	m := newSyncedMem(t)
	for i, name := range []string{"db/a", "db/b", "db/c"} {
		if err := WriteFile(m, name, bytes.Repeat([]byte{byte('a' + i)}, 10000)); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, m, name, bytes.Repeat([]byte{byte('A' + i)}, 20000))
	}
	s := testSeed(t)
	clone := func() map[string]string {
		cfg := CrashCloneConfig{UnsyncedPct: 50, TornPct: 30, TrashPct: 30, Rand: rand.New(rand.NewPCG(s, 4))}
		return dump(t, m.CrashClone(cfg))
	}
	if a, b := clone(), clone(); !maps.Equal(a, b) {
		t.Fatal("two clones with the same seed differ")
	}
}

func TestCrashCloneIndependent(t *testing.T) {
	m := newSyncedMem(t)
	if err := WriteFile(m, "db/f", []byte("base")); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(m, "db"); err != nil {
		t.Fatal(err)
	}
	l, err := m.Lock("db/LOCK")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := m.CrashClone(CrashCloneConfig{UnsyncedPct: 100})
	cl, err := c.Lock("db/LOCK")
	if err != nil {
		t.Fatalf("lock carried into the clone: %v", err)
	}
	defer cl.Close()
	withFile(t, c, "db/f", func(f File) error { _, err := f.Write([]byte("CLONE")); return err })
	withFile(t, m, "db/f", func(f File) error { return f.Truncate(1) })
	if got := mustRead(t, m, "db/f"); string(got) != "b" {
		t.Fatalf("original = %q", got)
	}
	if got := mustRead(t, c, "db/f"); string(got) != "CLONE" {
		t.Fatalf("clone = %q", got)
	}
	// A clone's state is all synced: cloning it again keeps everything.
	if got := mustRead(t, c.DropUnsynced(), "db/f"); string(got) != "base" {
		t.Fatalf("clone of clone = %q, want the clone's synced state", got)
	}
}

// TestCrashMoveSyncedOnlyAtTarget moves a directory and a file to another
// directory and syncs only the target, so both directories' synced
// entries hold them. The clone must still be a tree: the directory appears
// once, and the file keeps one content under both names.
func TestCrashMoveSyncedOnlyAtTarget(t *testing.T) {
	m := NewMem()
	for _, d := range []string{"d1/x", "d2"} {
		if err := m.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteFile(m, "d1/f", []byte("data")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"/", "d1", "d2"} {
		if err := SyncDir(m, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"x", "f"} {
		if err := m.Rename("d1/"+name, "d2/"+name); err != nil {
			t.Fatal(err)
		}
	}
	if err := SyncDir(m, "d2"); err != nil {
		t.Fatal(err)
	}
	c := m.DropUnsynced()
	if exists(t, c, "d1/x") == exists(t, c, "d2/x") {
		t.Fatalf("directory x in d1: %v, in d2: %v; want exactly one", exists(t, c, "d1/x"), exists(t, c, "d2/x"))
	}
	if a, b := mustRead(t, c, "d1/f"), mustRead(t, c, "d2/f"); string(a) != "data" || string(b) != "data" {
		t.Fatalf("f = %q and %q", a, b)
	}
}

// TestCrashCloneConcurrent clones while another goroutine appends, syncs
// and renames; with -race it checks CrashClone's locking, and it checks
// each clone holds a prefix of what was written.
func TestCrashCloneConcurrent(t *testing.T) {
	m := newSyncedMem(t)
	f, err := m.Create("db/wal")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 300 {
			if _, err := f.Write(bytes.Repeat([]byte{'w'}, 100)); err != nil {
				t.Error(err)
				return
			}
			if i%10 == 0 {
				if err := f.Sync(); err != nil {
					t.Error(err)
					return
				}
				if err := SyncDir(m, "db"); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	rng := rand.New(rand.NewPCG(testSeed(t), 5))
	for range 50 {
		c := m.CrashClone(CrashCloneConfig{UnsyncedPct: 100, Rand: rng})
		if !exists(t, c, "db/wal") {
			continue
		}
		got := mustRead(t, c, "db/wal")
		if bytes.Count(got, []byte{'w'}) != len(got) {
			t.Fatalf("clone holds bytes that were never written")
		}
	}
	wg.Wait()
}
