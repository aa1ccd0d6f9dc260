package vfs

import (
	"errors"
	"os"
	"sync/atomic"
)

// diskFile is a File over an *os.File. For a handle from OpenDir, dir is
// true and Sync is a full fsync of the directory.
type diskFile struct {
	f      *os.File
	dir    bool
	closed atomic.Bool
}

func (d *diskFile) Read(p []byte) (int, error) { return d.f.Read(p) }

func (d *diskFile) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

func (d *diskFile) Write(p []byte) (int, error) { return d.f.Write(p) }

func (d *diskFile) Truncate(size int64) error { return d.f.Truncate(size) }

// Close closes the file. A second Close returns nil.
func (d *diskFile) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	err := d.f.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}

// Sync is fdatasync for a regular file (see datasync) and fsync for a
// directory.
func (d *diskFile) Sync() error {
	if d.closed.Load() {
		return &os.PathError{Op: "sync", Path: d.f.Name(), Err: os.ErrClosed}
	}
	if d.dir {
		return d.f.Sync()
	}
	return datasync(d.f)
}

func (d *diskFile) Size() (int64, error) {
	fi, err := d.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
