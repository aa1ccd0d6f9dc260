package manifest

import (
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/internal/vfs/errorfs"
)

func TestFileName(t *testing.T) {
	for _, c := range []struct {
		num  uint64
		name string
	}{{1, "MANIFEST-000001"}, {123456, "MANIFEST-123456"}, {1234567, "MANIFEST-1234567"}, {1<<64 - 1, "MANIFEST-18446744073709551615"}} {
		if got := FileName(c.num); got != c.name {
			t.Errorf("FileName(%d) = %q, want %q", c.num, got, c.name)
		}
		if got, ok := ParseFileName(c.name); !ok || got != c.num {
			t.Errorf("ParseFileName(%q) = %d, %v", c.name, got, ok)
		}
	}
	for _, bad := range []string{
		"", "MANIFEST-", "MANIFEST-000000", "MANIFEST-1", "MANIFEST-0000001", "MANIFEST-00000a",
		"MANIFEST-+00001", "MANIFEST--00001", "manifest-000001", "MANIFEST-000001 ", "MANIFEST-000001\n",
		"MANIFEST-18446744073709551616", "000001.log", "CURRENT",
	} {
		if n, ok := ParseFileName(bad); ok {
			t.Errorf("ParseFileName(%q) = %d, want rejection", bad, n)
		}
	}
}

func TestParseCurrent(t *testing.T) {
	if n, err := ParseCurrent([]byte("MANIFEST-000042\n")); err != nil || n != 42 {
		t.Fatalf("ParseCurrent = %d, %v", n, err)
	}
	for _, bad := range []string{
		"",                                   // empty (a crash before the data reached the disk)
		"MANIFEST-000042",                    // no newline: google/leveldb#75
		"MANIFEST-000042\n\n",                // trailing bytes
		"MANIFEST-000042\r\n",                // CRLF
		"\n",                                 // only the newline
		"MANIFEST-000000\n",                  // manifest 0
		"MANIFEST-42\n",                      // not canonical
		"\x00\x00\x00\x00\x00\x00\x00\x00\n", // zeroed block
		"MANIFEST-000042\nMANIFEST-000043\n",
		strings.Repeat("MANIFEST-000042\n", 100),
	} {
		n, err := ParseCurrent([]byte(bad))
		if !errors.Is(err, base.ErrCorruption) {
			t.Errorf("ParseCurrent(%q) = %d, %v; want corruption", bad, n, err)
		}
	}
}

// writeManifestFile writes a manifest file holding data, synced, with its
// directory entry synced.
func writeManifestFile(t *testing.T, fs vfs.FS, num uint64, data string) {
	t.Helper()
	if err := vfs.WriteFile(fs, fs.PathJoin("db", FileName(num)), []byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := vfs.SyncDir(fs, "db"); err != nil {
		t.Fatal(err)
	}
}

func TestReadCurrent(t *testing.T) {
	fs := newStoreDir(t)
	if _, err := ReadCurrent(fs, "db"); !errors.Is(err, os.ErrNotExist) || errors.Is(err, base.ErrCorruption) {
		t.Fatalf("ReadCurrent with no CURRENT: %v, want ErrNotExist", err)
	}
	writeManifestFile(t, fs, 7, "x")
	if err := SetCurrent(fs, "db", 7); err != nil {
		t.Fatal(err)
	}
	if n, err := ReadCurrent(fs, "db"); err != nil || n != 7 {
		t.Fatalf("ReadCurrent = %d, %v", n, err)
	}
	for _, c := range []struct{ name, content string }{
		{"garbage", "hello world\n"},
		{"no newline", "MANIFEST-000007"},
		{"empty", ""},
		{"huge", strings.Repeat("x", 1<<20)},
		{"missing manifest", "MANIFEST-000008\n"},
	} {
		if err := vfs.WriteFile(fs, "db/CURRENT", []byte(c.content)); err != nil {
			t.Fatal(err)
		}
		n, err := ReadCurrent(fs, "db")
		if !errors.Is(err, base.ErrCorruption) || errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: ReadCurrent = %d, %v; want corruption (not ErrNotExist)", c.name, n, err)
		}
	}
}

func TestSetCurrentChecks(t *testing.T) {
	fs := newStoreDir(t)
	if err := SetCurrent(fs, "db", 0); err == nil {
		t.Error("SetCurrent of manifest 0 succeeded")
	}
	if err := SetCurrent(fs, "db", 3); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SetCurrent of a missing manifest: %v", err)
	}
	writeManifestFile(t, fs, 3, "")
	if err := SetCurrent(fs, "db", 3); err == nil {
		t.Error("SetCurrent of an empty manifest succeeded")
	}
	if _, err := fs.Stat("db/CURRENT"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused SetCurrent left a CURRENT: %v", err)
	}
}

// TestSetCurrentCrash switches CURRENT from manifest 1 to manifest 2 and
// takes a crash clone before every file system operation: a strict clone
// (only synced state) names manifest 1 until the directory sync that
// follows the rename, and manifest 2 from then on (so, after SetCurrent
// returns); a clone keeping random unsynced changes names one of the two,
// never anything else.
func TestSetCurrentCrash(t *testing.T) {
	rng := newRand(t)
	mem := newStoreDir(t)
	writeManifestFile(t, mem, 1, "one")
	if err := SetCurrent(mem, "db", 1); err != nil {
		t.Fatal(err)
	}
	var clones []crashClone
	fs := hookFS(mem, func(op errorfs.Op) { clones = append(clones, takeClones(mem, rng, op)) })
	if err := vfs.WriteFile(fs, "db/"+FileName(2), []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := SetCurrent(fs, "db", 2); err != nil {
		t.Fatal(err)
	}
	clones = append(clones, takeClones(mem, rng, errorfs.Op{}))
	switchAt := switchPoint(t, clones)
	for i, c := range clones {
		n, err := ReadCurrent(c.strict, "db")
		if want := map[bool]uint64{false: 1, true: 2}[i > switchAt]; err != nil || n != want {
			t.Fatalf("strict clone %d (before %v): ReadCurrent = %d, %v; want %d", i, c.op, n, err, want)
		}
		if n, err := ReadCurrent(c.loose, "db"); err != nil || (n != 1 && n != 2) || (i > switchAt && n != 2) {
			t.Fatalf("loose clone %d (before %v): ReadCurrent = %d, %v", i, c.op, n, err)
		}
	}
}

// crashClone holds two crash clones of a MemFS taken before op: one with
// only the synced state, one with random unsynced changes.
type crashClone struct {
	op            errorfs.Op
	strict, loose *vfs.MemFS
}

func takeClones(mem *vfs.MemFS, rng *rand.Rand, op errorfs.Op) crashClone {
	return crashClone{
		op:     op,
		strict: mem.CrashClone(vfs.CrashCloneConfig{}),
		loose: mem.CrashClone(vfs.CrashCloneConfig{UnsyncedPct: 50, TornPct: 30, TrashPct: 10,
			Rand: newPCG(rng.Uint64())}),
	}
}

// switchPoint returns the index of the clone taken before the directory
// sync that follows the last rename to CURRENT: the last clone whose strict
// copy must still name the old manifest.
func switchPoint(t *testing.T, clones []crashClone) int {
	renamed := false
	for i, c := range clones {
		if c.op.Kind == errorfs.OpRename && strings.HasSuffix(c.op.Path, currentTmpName) {
			renamed = true
		}
		if renamed && c.op.Kind == errorfs.OpDirSync {
			return i
		}
	}
	t.Fatalf("no directory sync after the rename of CURRENT among %d ops", len(clones))
	return 0
}
