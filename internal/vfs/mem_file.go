package vfs

import (
	"os"
	"sync/atomic"
	"syscall"
)

// memFile is a handle on a memNode. pos is the offset of Read and Write,
// which are for one goroutine at a time.
type memFile struct {
	fs       *MemFS
	n        *memNode
	name     string
	writable bool
	pos      int64
	closed   atomic.Bool
}

func (f *memFile) check(op string, write bool) error {
	switch {
	case f.closed.Load():
		return pathErr(op, f.name, os.ErrClosed)
	case f.n.isDir:
		return pathErr(op, f.name, syscall.EISDIR)
	case write && !f.writable:
		return pathErr(op, f.name, syscall.EBADF)
	}
	return nil
}

func (f *memFile) Read(p []byte) (int, error) {
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	c, err := f.n.readAt(p, f.pos)
	f.pos += int64(c)
	if c > 0 {
		return c, nil
	}
	return c, err
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("read", f.name, syscall.EINVAL)
	}
	return f.n.readAt(p, off)
}

func (f *memFile) Write(p []byte) (int, error) {
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	f.n.writeAt(p, f.pos)
	f.pos += int64(len(p))
	return len(p), nil
}

// Close closes the handle. A second Close returns nil.
func (f *memFile) Close() error {
	f.closed.Store(true)
	return nil
}

// Sync snapshots the file's bytes, or for a directory handle its entries,
// as what survives a crash (see MemFS.CrashClone).
func (f *memFile) Sync() error {
	if f.closed.Load() {
		return pathErr("sync", f.name, os.ErrClosed)
	}
	if f.n.isDir {
		f.fs.syncDir(f.n)
		return nil
	}
	f.n.sync()
	return nil
}

func (f *memFile) Truncate(size int64) error {
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", f.name, syscall.EINVAL)
	}
	f.n.truncate(size)
	return nil
}

// Size returns the file's size; 0 for a directory.
func (f *memFile) Size() (int64, error) {
	if f.closed.Load() {
		return 0, pathErr("stat", f.name, os.ErrClosed)
	}
	if f.n.isDir {
		return 0, nil
	}
	return f.n.size(), nil
}

func pathErr(op, name string, err error) error {
	return &os.PathError{Op: op, Path: name, Err: err}
}
