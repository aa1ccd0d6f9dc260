package vfs

import (
	"path/filepath"
	"testing"
)

// benchWrite appends 4 KiB blocks (each followed by a Sync if sync is
// set) to a file that is replaced by a new one every 1024 blocks, as WAL
// rotation does, so memory stays bounded.
func benchWrite(b *testing.B, fs FS, name string, sync bool) {
	var w File
	defer func() {
		if w != nil {
			w.Close()
		}
	}()
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%1024 == 0 {
			w = rotate(b, fs, w, name)
		}
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
		if sync {
			if err := w.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// rotate closes and removes w (if not nil) and creates name afresh.
func rotate(b *testing.B, fs FS, w File, name string) File {
	if w != nil {
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		if err := fs.Remove(name); err != nil {
			b.Fatal(err)
		}
	}
	w, err := fs.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	return w
}

func BenchmarkMemWrite(b *testing.B) { benchWrite(b, NewMem(), "f", false) }

func BenchmarkMemWriteSync(b *testing.B) { benchWrite(b, NewMem(), "f", true) }

func BenchmarkDiskWrite(b *testing.B) {
	benchWrite(b, Default, filepath.Join(b.TempDir(), "f"), false)
}

func BenchmarkDiskWriteSync(b *testing.B) {
	benchWrite(b, Default, filepath.Join(b.TempDir(), "f"), true)
}

func benchReadAt(b *testing.B, fs FS, name string) {
	if err := WriteFile(fs, name, make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	f, err := fs.Open(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := f.ReadAt(buf, int64(i%255)*4096); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemReadAt(b *testing.B) { benchReadAt(b, NewMem(), "f") }

func BenchmarkDiskReadAt(b *testing.B) {
	benchReadAt(b, Default, filepath.Join(b.TempDir(), "f"))
}
