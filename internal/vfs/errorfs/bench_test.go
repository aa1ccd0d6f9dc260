package errorfs

import (
	"testing"

	"github.com/stratadb/strata/internal/vfs"
)

// benchWrite measures the wrapper's cost on 4 KiB writes to a MemFS.
func benchWrite(b *testing.B, inj Injector) {
	fs := Wrap(vfs.NewMem(), inj)
	var f vfs.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	buf := make([]byte, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%1024 == 0 {
			f = rotate(b, fs, f)
		}
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteNoInjector(b *testing.B) { benchWrite(b, nil) }

func BenchmarkWriteFilteredInjector(b *testing.B) {
	benchWrite(b, OnKinds(PathMatch("*.log", Always(ErrInjected)), OpSync))
}

// rotate closes and removes f (if not nil) and creates a new file.
func rotate(b *testing.B, fs *FS, f vfs.File) vfs.File {
	if f != nil {
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		if err := fs.Remove("f"); err != nil {
			b.Fatal(err)
		}
	}
	f, err := fs.Create("f")
	if err != nil {
		b.Fatal(err)
	}
	return f
}
