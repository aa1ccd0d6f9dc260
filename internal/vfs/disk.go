package vfs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// Default is the operating system's filesystem. Names are paths as the os
// package takes them. It is safe for concurrent use.
//
// Its files are *os.File underneath: File.Sync of a regular file is
// fdatasync(2) on Linux and os.File.Sync elsewhere (F_FULLFSYNC on macOS);
// File.Sync of a handle from OpenDir is fsync(2) of the directory. Lock uses
// flock(2) where the platform has it, and on every platform also refuses a
// second Lock of the same path within this process.
var Default FS = diskFS{}

// diskFS implements FS over the os package.
type diskFS struct{}

func (diskFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return &diskFile{f: f}, nil
}

func (diskFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return &diskFile{f: f}, nil
}

func (diskFS) OpenReadWrite(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &diskFile{f: f}, nil
}

func (diskFS) OpenDir(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.IsDir() {
		f.Close()
		return nil, &os.PathError{Op: "opendir", Path: name, Err: syscall.ENOTDIR}
	}
	return &diskFile{f: f, dir: true}, nil
}

func (diskFS) Remove(name string) error { return os.Remove(name) }

func (diskFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

func (diskFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

func (diskFS) List(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

func (diskFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

func (diskFS) Lock(name string) (io.Closer, error) {
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, fmt.Errorf("vfs: lock %s: %w", name, err)
	}
	return lockFile(abs)
}

func (diskFS) PathJoin(elem ...string) string { return filepath.Join(elem...) }
