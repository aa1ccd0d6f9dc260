package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/stratadb/strata/internal/testseed"
	"maps"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
)

// testSeed returns the seed of a randomized test, logging it.
func testSeed(t *testing.T) uint64 { return testseed.Seed(t) }

// dump returns every file and directory under the root of fs by path, a
// file's value being its content and a directory's "<dir>".
func dump(t *testing.T, fs FS) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(dir string)
	walk = func(dir string) {
		names, err := fs.List(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			p := fs.PathJoin(dir, n)
			fi, err := fs.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.IsDir() {
				out[p] = "<dir>"
				walk(p)
				continue
			}
			out[p] = string(mustRead(t, fs, p))
		}
	}
	walk("/")
	return out
}

func TestMemPathsCleaned(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, m, "/a/b/f", []byte("x"))
	for _, name := range []string{"a/b/f", "./a/../a/b/f", "/a//b/f", "../a/b/f"} {
		if got := mustRead(t, m, name); string(got) != "x" {
			t.Errorf("%s: %q", name, got)
		}
	}
	if fi, err := m.Stat("/"); err != nil || !fi.IsDir() {
		t.Fatalf("Stat(/) = %v, %v", fi, err)
	}
	if err := m.Remove("/"); err == nil {
		t.Fatal("Remove(/) succeeded")
	}
}

func TestMemErrors(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("d/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, m, "d/f", nil)
	cases := []struct {
		what string
		err  error
		want error
	}{
		{"rename dir into itself", m.Rename("d", "d/sub/x"), syscall.EINVAL},
		{"rename file over dir", m.Rename("d/f", "d/sub"), syscall.EISDIR},
		{"rename dir over file", m.Rename("d/sub", "d/f"), syscall.ENOTDIR},
		{"rename dir over non-empty dir", m.Rename("d/sub", "d"), syscall.ENOTEMPTY},
		{"create under a file", func() error { _, err := m.Create("d/f/g"); return err }(), syscall.ENOTDIR},
		{"create deep under a file", func() error { _, err := m.Create("d/f/g/h"); return err }(), syscall.ENOTDIR},
		{"open under a file", func() error { _, err := m.Open("d/f/g"); return err }(), syscall.ENOTDIR},
		{"lock a dir", func() error { _, err := m.Lock("d"); return err }(), syscall.EISDIR},
		{"list a file", func() error { _, err := m.List("d/f"); return err }(), syscall.ENOTDIR},
		{"rename from a missing dir", m.Rename("nodir/a", "d/a"), syscall.ENOENT},
		{"rename into a missing dir", m.Rename("d/f", "nodir/a"), syscall.ENOENT},
		{"rename root", m.Rename("/", "d/x"), syscall.EINVAL},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.what, c.err, c.want)
		}
	}
	if err := m.MkdirAll("e", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.Rename("d/sub", "e"); err != nil {
		t.Fatalf("rename dir over empty dir: %v", err)
	}
	if _, err := m.Stat("d/sub"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("d/sub after rename: %v", err)
	}
}

func TestMemDirHandle(t *testing.T) {
	m := NewMem()
	d, err := m.Open("/")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Read(make([]byte, 1)); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("Read of a dir = %v", err)
	}
	if _, err := d.Write([]byte("x")); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("Write of a dir = %v", err)
	}
	if err := d.Truncate(0); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("Truncate of a dir = %v", err)
	}
	if fi, err := m.Stat("/"); err != nil || fi.ModTime().IsZero() || fi.Sys() != nil || fi.Name() != "/" {
		t.Fatalf("Stat(/) = %v, %v", fi, err)
	}
	if size, err := d.Size(); size != 0 || err != nil {
		t.Fatalf("Size of a dir = %d, %v", size, err)
	}
}

func TestMemRemovedFileStaysOpen(t *testing.T) {
	m := NewMem()
	f, err := m.Create("f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := m.Remove("f"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if n, err := f.ReadAt(buf, 0); n != 3 || err != nil || string(buf) != "abc" {
		t.Fatalf("ReadAt = %d, %v, %q", n, err, buf)
	}
	if names, _ := m.List("/"); len(names) != 0 {
		t.Fatalf("List = %q", names)
	}
}

func TestMemTruncateNegative(t *testing.T) {
	m := NewMem()
	f, err := m.Create("f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(-1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Truncate(-1) = %v", err)
	}
}

// memModel is the expected state of one directory of a MemFS: current and
// synced entries, and for each file its current and synced bytes.
type memModel struct {
	cur, synced map[string]*modelFile
}

type modelFile struct{ data, synced []byte }

// view returns the model as dump would show it: the current state, or
// (durable) what a strict power cut keeps.
func (mm *memModel) view(dir string, durable bool) map[string]string {
	out := map[string]string{dir: "<dir>"}
	entries := mm.cur
	if durable {
		entries = mm.synced
	}
	for name, f := range entries {
		if durable {
			out[dir+"/"+name] = string(f.synced)
		} else {
			out[dir+"/"+name] = string(f.data)
		}
	}
	return out
}

// TestMemModel applies random operations to a MemFS and to a model, and
// checks the FS, its strict crash clone and its full clone against the
// model. It exercises the copy-on-write sharing of synced bytes.
func TestMemModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 0))
	m := NewMem()
	const dir = "/d"
	if err := m.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(m, "/"); err != nil {
		t.Fatal(err)
	}
	mm := &memModel{cur: map[string]*modelFile{}, synced: map[string]*modelFile{}}
	for i := range 3000 {
		op := applyRandomOp(t, rng, m, mm, dir)
		if i%50 != 49 {
			continue
		}
		check := func(what string, fs FS, want map[string]string) {
			if got := dump(t, fs); !maps.Equal(got, want) {
				t.Fatalf("op %d (%s): %s:\n got %q\nwant %q", i, op, what, got, want)
			}
		}
		check("current", m, mm.view(dir, false))
		check("DropUnsynced", m.DropUnsynced(), mm.view(dir, true))
		check("CrashClone(100)", m.CrashClone(CrashCloneConfig{UnsyncedPct: 100}), mm.view(dir, false))
	}
}

// applyRandomOp applies one random operation to m and the model.
func applyRandomOp(t *testing.T, rng *rand.Rand, m *MemFS, mm *memModel, dir string) string {
	t.Helper()
	name := fmt.Sprintf("f%d", rng.IntN(4))
	p := dir + "/" + name
	mf := mm.cur[name]
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return b
	}
	switch k := rng.IntN(8); {
	case k == 0 || mf == nil:
		data := randBytes(rng.IntN(3 * DefaultCrashBlockSize))
		mustWrite(t, m, p, data)
		if mf == nil {
			mf = &modelFile{}
			mm.cur[name] = mf
		}
		mf.data = data
		return "create " + name
	case k == 1:
		data := randBytes(rng.IntN(2 * DefaultCrashBlockSize))
		withFile(t, m, p, func(f File) error { _, err := f.Write(data); return err })
		mf.data = writeAtGrow(bytes.Clone(mf.data), data, 0)
		return "overwrite " + name
	case k == 2:
		size := rng.IntN(3 * DefaultCrashBlockSize)
		withFile(t, m, p, func(f File) error { return f.Truncate(int64(size)) })
		mf.data = append(bytes.Clone(mf.data), make([]byte, max(0, size-len(mf.data)))...)[:size]
		return "truncate " + name
	case k <= 4:
		withFile(t, m, p, func(f File) error { return f.Sync() })
		mf.synced = bytes.Clone(mf.data)
		return "sync " + name
	case k == 5:
		if err := m.Remove(p); err != nil {
			t.Fatal(err)
		}
		delete(mm.cur, name)
		return "remove " + name
	case k == 6:
		to := fmt.Sprintf("f%d", rng.IntN(4))
		if err := m.Rename(p, dir+"/"+to); err != nil {
			t.Fatal(err)
		}
		delete(mm.cur, name)
		mm.cur[to] = mf
		return "rename " + name + " " + to
	default:
		if err := SyncDir(m, dir); err != nil {
			t.Fatal(err)
		}
		mm.synced = maps.Clone(mm.cur)
		return "syncdir"
	}
}

// withFile opens name for writing, calls f, and closes it.
func withFile(t *testing.T, fs FS, name string, f func(File) error) {
	t.Helper()
	h, err := fs.OpenReadWrite(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := f(h); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}
