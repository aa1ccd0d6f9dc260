package vfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
)

// fsCase is one FS under the conformance tests, with a directory in it.
type fsCase struct {
	name string
	new  func(t *testing.T) (FS, string)
}

var fsCases = []fsCase{
	{"disk", func(t *testing.T) (FS, string) { return Default, t.TempDir() }},
	{"mem", func(t *testing.T) (FS, string) {
		m := NewMem()
		if err := m.MkdirAll("/test/dir", 0o755); err != nil {
			t.Fatal(err)
		}
		return m, "/test/dir"
	}},
}

// forEachFS runs f as a subtest on every FS implementation.
func forEachFS(t *testing.T, f func(t *testing.T, fs FS, dir string)) {
	for _, c := range fsCases {
		t.Run(c.name, func(t *testing.T) {
			fs, dir := c.new(t)
			f(t, fs, dir)
		})
	}
}

func mustWrite(t *testing.T, fs FS, name string, data []byte) {
	t.Helper()
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f.Write(data); n != len(data) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, fs FS, name string) []byte {
	t.Helper()
	b, err := ReadFile(fs, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCreateWriteRead(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		name := fs.PathJoin(dir, "a")
		f, err := fs.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"hello ", "world"} {
			if _, err := f.Write([]byte(s)); err != nil {
				t.Fatal(err)
			}
		}
		if size, err := f.Size(); size != 11 || err != nil {
			t.Fatalf("Size = %d, %v", size, err)
		}
		buf := make([]byte, 5)
		if n, err := f.ReadAt(buf, 6); n != 5 || err != nil || string(buf) != "world" {
			t.Fatalf("ReadAt = %d, %v, %q", n, err, buf)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := fs.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got, err := io.ReadAll(r)
		if err != nil || string(got) != "hello world" {
			t.Fatalf("ReadAll = %q, %v", got, err)
		}
		if _, err := r.Write([]byte("x")); err == nil {
			t.Fatal("Write on a file from Open succeeded")
		}
	})
}

func TestCreateTruncatesExisting(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		name := fs.PathJoin(dir, "a")
		mustWrite(t, fs, name, []byte("long old content"))
		mustWrite(t, fs, name, []byte("new"))
		if got := mustRead(t, fs, name); string(got) != "new" {
			t.Fatalf("content = %q", got)
		}
	})
}

func TestMissing(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		missing := fs.PathJoin(dir, "missing")
		inMissing := fs.PathJoin(dir, "nodir", "f")
		checks := map[string]error{}
		_, checks["Open"] = fs.Open(missing)
		_, checks["OpenReadWrite"] = fs.OpenReadWrite(missing)
		_, checks["OpenDir"] = fs.OpenDir(missing)
		_, checks["Create in missing dir"] = fs.Create(inMissing)
		_, checks["Lock in missing dir"] = fs.Lock(inMissing)
		_, checks["Stat"] = fs.Stat(missing)
		_, checks["List"] = fs.List(missing)
		checks["Remove"] = fs.Remove(missing)
		checks["Rename"] = fs.Rename(missing, fs.PathJoin(dir, "b"))
		for what, err := range checks {
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: err = %v, want os.ErrNotExist", what, err)
			}
		}
	})
}

func TestOpenReadWrite(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		name := fs.PathJoin(dir, "a")
		mustWrite(t, fs, name, []byte("0123456789"))
		f, err := fs.OpenReadWrite(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("ab")); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, fs, name); string(got) != "ab23456789" {
			t.Fatalf("content = %q", got)
		}
	})
}

func TestTruncate(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		name := fs.PathJoin(dir, "a")
		f, err := fs.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write([]byte("0123456789")); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(4); err != nil {
			t.Fatal(err)
		}
		// The offset stays at 10: the next write leaves a hole of zeros.
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		want := []byte("0123\x00\x00\x00\x00\x00\x00x")
		if got := mustRead(t, fs, name); !bytes.Equal(got, want) {
			t.Fatalf("after shrink: %q, want %q", got, want)
		}
		if err := f.Truncate(14); err != nil {
			t.Fatal(err)
		}
		want = append(want, 0, 0, 0)
		if got := mustRead(t, fs, name); !bytes.Equal(got, want) {
			t.Fatalf("after grow: %q, want %q", got, want)
		}
		if size, err := f.Size(); size != 14 || err != nil {
			t.Fatalf("Size = %d, %v", size, err)
		}
	})
}

func TestReadAtEOF(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		name := fs.PathJoin(dir, "a")
		mustWrite(t, fs, name, []byte("abc"))
		f, err := fs.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4)
		if n, err := f.ReadAt(buf, 1); n != 2 || err != io.EOF || string(buf[:2]) != "bc" {
			t.Fatalf("ReadAt past end = %d, %v", n, err)
		}
		if n, err := f.ReadAt(buf, 3); n != 0 || err != io.EOF {
			t.Fatalf("ReadAt at end = %d, %v", n, err)
		}
		if _, err := f.ReadAt(buf, -1); err == nil {
			t.Fatal("ReadAt at -1 succeeded")
		}
		if n, err := f.Read(buf); n != 3 || err != nil {
			t.Fatalf("Read = %d, %v", n, err)
		}
		if n, err := f.Read(buf); n != 0 || err != io.EOF {
			t.Fatalf("Read at end = %d, %v", n, err)
		}
	})
}

func TestListSorted(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		for _, n := range []string{"c", "a", "b10", "b2"} {
			mustWrite(t, fs, fs.PathJoin(dir, n), nil)
		}
		if err := fs.MkdirAll(fs.PathJoin(dir, "sub", "deeper"), 0o755); err != nil {
			t.Fatal(err)
		}
		got, err := fs.List(dir)
		want := []string{"a", "b10", "b2", "c", "sub"}
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("List = %q, %v; want %q", got, err, want)
		}
		if _, err := fs.List(fs.PathJoin(dir, "a")); err == nil {
			t.Fatal("List of a file succeeded")
		}
	})
}

func TestRename(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		a, b := fs.PathJoin(dir, "a"), fs.PathJoin(dir, "b")
		mustWrite(t, fs, a, []byte("new"))
		mustWrite(t, fs, b, []byte("old"))
		if err := fs.Rename(a, b); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, fs, b); string(got) != "new" {
			t.Fatalf("b = %q", got)
		}
		if _, err := fs.Stat(a); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Stat(a) after rename: %v", err)
		}
		if err := fs.Rename(b, b); err != nil {
			t.Fatalf("rename onto itself: %v", err)
		}
		sub := fs.PathJoin(dir, "sub")
		if err := fs.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := fs.Rename(b, fs.PathJoin(sub, "c")); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, fs, fs.PathJoin(sub, "c")); string(got) != "new" {
			t.Fatalf("sub/c = %q", got)
		}
		if err := fs.Rename(fs.PathJoin(sub, "c"), dir); err == nil {
			t.Fatal("renaming a file over a non-empty directory succeeded")
		}
	})
}

func TestRemove(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		sub := fs.PathJoin(dir, "sub")
		f := fs.PathJoin(sub, "f")
		if err := fs.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, fs, f, []byte("x"))
		if err := fs.Remove(sub); err == nil {
			t.Fatal("removing a non-empty directory succeeded")
		}
		if err := fs.Remove(f); err != nil {
			t.Fatal(err)
		}
		if err := fs.Remove(sub); err != nil {
			t.Fatal(err)
		}
		if names, err := fs.List(dir); err != nil || len(names) != 0 {
			t.Fatalf("List = %q, %v", names, err)
		}
	})
}

func TestMkdirAllStat(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		deep := fs.PathJoin(dir, "x", "y", "z")
		for range 2 {
			if err := fs.MkdirAll(deep, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		fi, err := fs.Stat(deep)
		if err != nil || !fi.IsDir() || fi.Name() != "z" || !fi.Mode().IsDir() {
			t.Fatalf("Stat(dir) = %v, %v", fi, err)
		}
		name := fs.PathJoin(deep, "f")
		mustWrite(t, fs, name, []byte("12345"))
		fi, err = fs.Stat(name)
		if err != nil || fi.IsDir() || fi.Size() != 5 || fi.Name() != "f" || !fi.Mode().IsRegular() {
			t.Fatalf("Stat(file) = %v, %v", fi, err)
		}
		if err := fs.MkdirAll(fs.PathJoin(name, "under"), 0o755); err == nil {
			t.Fatal("MkdirAll under a file succeeded")
		}
	})
}

func TestOpenDirSync(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		mustWrite(t, fs, fs.PathJoin(dir, "f"), nil)
		if err := SyncDir(fs, dir); err != nil {
			t.Fatal(err)
		}
		if _, err := fs.OpenDir(fs.PathJoin(dir, "f")); err == nil {
			t.Fatal("OpenDir of a file succeeded")
		}
		if _, err := fs.OpenReadWrite(dir); err == nil {
			t.Fatal("OpenReadWrite of a directory succeeded")
		}
		if _, err := fs.Create(dir); err == nil {
			t.Fatal("Create over a directory succeeded")
		}
		if err := SyncDir(fs, fs.PathJoin(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("SyncDir(missing) = %v", err)
		}
	})
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		f, err := fs.Create(fs.PathJoin(dir, "f"))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		if _, err := f.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Write after Close = %v", err)
		}
		if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("ReadAt after Close = %v", err)
		}
		if err := f.Sync(); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Sync after Close = %v", err)
		}
		if _, err := f.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Read after Close = %v", err)
		}
		if err := f.Truncate(0); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Truncate after Close = %v", err)
		}
		if _, err := f.Size(); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Size after Close = %v", err)
		}
	})
}

func TestLockExclusion(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		name := fs.PathJoin(dir, "LOCK")
		l, err := fs.Lock(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fs.Stat(name); err != nil {
			t.Fatalf("Lock did not create the file: %v", err)
		}
		if _, err := fs.Lock(name); !errors.Is(err, ErrLocked) {
			t.Fatalf("second Lock = %v, want ErrLocked", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		l2, err := fs.Lock(name)
		if err != nil {
			t.Fatalf("Lock after Close = %v", err)
		}
		if err := l2.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHelpers(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		name := fs.PathJoin(dir, "f")
		if err := WriteFile(fs, name, []byte("payload")); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, fs, name); string(got) != "payload" {
			t.Fatalf("ReadFile = %q", got)
		}
		if _, err := ReadFile(fs, fs.PathJoin(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("ReadFile(missing) = %v", err)
		}
		if err := WriteFile(fs, fs.PathJoin(dir, "no", "f"), nil); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("WriteFile in missing dir = %v", err)
		}
	})
}

// TestConcurrentReadAtWrite runs ReadAt on one handle while another
// appends; with -race it checks the implementations are race-free, and it
// checks every read sees bytes that were written.
func TestConcurrentReadAtWrite(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs FS, dir string) {
		name := fs.PathJoin(dir, "f")
		w, err := fs.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		r, err := fs.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		chunk := bytes.Repeat([]byte{7}, 100)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if _, err := w.Write(chunk); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		buf := make([]byte, 50)
		for i := range 400 {
			n, _ := r.ReadAt(buf, int64(i*25))
			for _, c := range buf[:n] {
				if c != 7 {
					t.Fatalf("read byte %d", c)
				}
			}
		}
		wg.Wait()
		if size, err := r.Size(); size != 20000 || err != nil {
			t.Fatalf("Size = %d, %v", size, err)
		}
	})
}
