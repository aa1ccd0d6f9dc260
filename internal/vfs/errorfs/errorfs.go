// Package errorfs wraps a vfs.FS so that tests can make any of its
// operations fail, on purpose and reproducibly.
//
// Every operation through the wrapper gets an index (Op.Index), counted
// from 0 in the order the operations start. A test first runs a workload
// with no injector and reads Ops to learn how many operations it does, then
// reruns it once per index i with OnIndex(i, ErrInjected) (or Persistent)
// and checks that every failure is handled. Injected errors name the op,
// for example "errorfs: injected #12 write db/000001.log: errorfs: injected
// I/O error", so a failing run can be replayed.
package errorfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/stratadb/strata/internal/vfs"
)

// FS is a vfs.FS that asks an Injector before each operation. It is safe
// for concurrent use if the Injector is.
type FS struct {
	fs  vfs.FS
	inj atomic.Pointer[injectorBox]
	ops atomic.Int64
}

type injectorBox struct{ inj Injector }

var _ vfs.FS = (*FS)(nil)

// Wrap returns fs wrapped so that inj may fail any operation. A nil inj
// fails nothing (the FS then only counts operations).
func Wrap(fs vfs.FS, inj Injector) *FS {
	e := &FS{fs: fs}
	e.SetInjector(inj)
	return e
}

// SetInjector replaces the Injector; ops that start afterwards see the new
// one. nil fails nothing. It may be called concurrently with anything.
func (e *FS) SetInjector(inj Injector) {
	e.inj.Store(&injectorBox{inj: inj})
}

// Ops returns how many operations have started through e so far, which is
// also the index the next one will get.
func (e *FS) Ops() int64 { return e.ops.Load() }

// Unwrap returns the wrapped FS.
func (e *FS) Unwrap() vfs.FS { return e.fs }

// maybeError numbers an op and asks the injector about it.
func (e *FS) maybeError(kind OpKind, path string) error {
	op := Op{Kind: kind, Path: path, Index: e.ops.Add(1) - 1}
	b := e.inj.Load()
	if b.inj == nil {
		return nil
	}
	if err := b.inj.MaybeError(op); err != nil {
		return fmt.Errorf("errorfs: injected %s: %w", op, err)
	}
	return nil
}

// Create implements vfs.FS (OpCreate).
func (e *FS) Create(name string) (vfs.File, error) {
	if err := e.maybeError(OpCreate, name); err != nil {
		return nil, err
	}
	f, err := e.fs.Create(name)
	return e.wrapFile(f, err, name, false)
}

// Open implements vfs.FS (OpOpen).
func (e *FS) Open(name string) (vfs.File, error) {
	if err := e.maybeError(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.fs.Open(name)
	return e.wrapFile(f, err, name, false)
}

// OpenReadWrite implements vfs.FS (OpOpen).
func (e *FS) OpenReadWrite(name string) (vfs.File, error) {
	if err := e.maybeError(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.fs.OpenReadWrite(name)
	return e.wrapFile(f, err, name, false)
}

// OpenDir implements vfs.FS (OpOpenDir). Sync on the returned handle is
// OpDirSync.
func (e *FS) OpenDir(name string) (vfs.File, error) {
	if err := e.maybeError(OpOpenDir, name); err != nil {
		return nil, err
	}
	f, err := e.fs.OpenDir(name)
	return e.wrapFile(f, err, name, true)
}

// wrapFile wraps the result of an open call of the file name; dir says
// whether it is a directory's handle.
func (e *FS) wrapFile(f vfs.File, err error, name string, dir bool) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &file{fs: e, f: f, name: name, dir: dir}, nil
}

// Remove implements vfs.FS (OpRemove).
func (e *FS) Remove(name string) error {
	if err := e.maybeError(OpRemove, name); err != nil {
		return err
	}
	return e.fs.Remove(name)
}

// Rename implements vfs.FS (OpRename, with Op.Path = oldname).
func (e *FS) Rename(oldname, newname string) error {
	if err := e.maybeError(OpRename, oldname); err != nil {
		return err
	}
	return e.fs.Rename(oldname, newname)
}

// MkdirAll implements vfs.FS (OpMkdirAll).
func (e *FS) MkdirAll(dir string, perm os.FileMode) error {
	if err := e.maybeError(OpMkdirAll, dir); err != nil {
		return err
	}
	return e.fs.MkdirAll(dir, perm)
}

// List implements vfs.FS (OpList).
func (e *FS) List(dir string) ([]string, error) {
	if err := e.maybeError(OpList, dir); err != nil {
		return nil, err
	}
	return e.fs.List(dir)
}

// Stat implements vfs.FS (OpStat).
func (e *FS) Stat(name string) (os.FileInfo, error) {
	if err := e.maybeError(OpStat, name); err != nil {
		return nil, err
	}
	return e.fs.Stat(name)
}

// Lock implements vfs.FS (OpLock). Closing the returned Closer is not an
// op: it is neither counted nor failed.
func (e *FS) Lock(name string) (io.Closer, error) {
	if err := e.maybeError(OpLock, name); err != nil {
		return nil, err
	}
	return e.fs.Lock(name)
}

// PathJoin implements vfs.FS. It is not an op.
func (e *FS) PathJoin(elem ...string) string { return e.fs.PathJoin(elem...) }

// file is a vfs.File of an FS.
type file struct {
	fs   *FS
	f    vfs.File
	name string
	dir  bool
}

func (f *file) Read(p []byte) (int, error) {
	if err := f.fs.maybeError(OpRead, f.name); err != nil {
		return 0, err
	}
	return f.f.Read(p)
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.maybeError(OpRead, f.name); err != nil {
		return 0, err
	}
	return f.f.ReadAt(p, off)
}

// Write implements vfs.File (OpWrite). An injected ShortWrite writes the
// first half of p.
func (f *file) Write(p []byte) (int, error) {
	err := f.fs.maybeError(OpWrite, f.name)
	if err == nil {
		return f.f.Write(p)
	}
	var sw ShortWrite
	if !errors.As(err, &sw) {
		return 0, err
	}
	n, werr := f.f.Write(p[:len(p)/2])
	if werr != nil {
		return n, werr
	}
	return n, err
}

func (f *file) Close() error {
	err := f.fs.maybeError(OpClose, f.name)
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (f *file) Sync() error {
	kind := OpSync
	if f.dir {
		kind = OpDirSync
	}
	if err := f.fs.maybeError(kind, f.name); err != nil {
		return err
	}
	return f.f.Sync()
}

func (f *file) Truncate(size int64) error {
	if err := f.fs.maybeError(OpTruncate, f.name); err != nil {
		return err
	}
	return f.f.Truncate(size)
}

func (f *file) Size() (int64, error) {
	if err := f.fs.maybeError(OpStat, f.name); err != nil {
		return 0, err
	}
	return f.f.Size()
}
