// Package vfs is the filesystem strata runs on. Every file operation of the
// engine goes through an FS, so that tests can swap the operating system's
// filesystem for an in-memory one, one that simulates a power cut by dropping
// unsynced writes, or one that injects errors.
//
// The implementations are Default (the operating system's filesystem),
// MemFS (in memory, with CrashClone to simulate a power cut) and, in the
// subpackage errorfs, a wrapper that fails chosen operations.
//
// golang.org/x/sys is used here and nowhere else in the engine.
package vfs

import (
	"errors"
	"io"
	"os"
)

// File is an open file. Reads and writes at the file offset (Read, Write)
// are for one goroutine at a time; ReadAt may be called concurrently with
// anything but Close.
//
// Close is idempotent: a second Close returns nil. Every other method
// called after Close returns an error wrapping os.ErrClosed.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	// Sync makes the file's data durable (fdatasync on Linux). On a
	// directory opened with OpenDir it makes the directory's entries durable.
	Sync() error
	// Truncate changes the file's size. It does not move the file offset.
	Truncate(size int64) error
	// Size returns the file's current size.
	Size() (int64, error)
}

// FS is a filesystem. Names are paths as the os package takes them.
// Implementations are safe for concurrent use.
type FS interface {
	// Create creates the named file, truncating it if it exists, opened
	// for reading and writing at offset 0.
	Create(name string) (File, error)
	// Open opens the named file for reading.
	Open(name string) (File, error)
	// OpenReadWrite opens an existing file for reading and writing, at
	// offset 0 (it does not truncate).
	OpenReadWrite(name string) (File, error)
	// OpenDir opens a directory so that it can be synced.
	OpenDir(name string) (File, error)
	// Remove removes the named file or empty directory.
	Remove(name string) error
	// Rename renames a file, replacing newname if it exists.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and its missing parents.
	MkdirAll(dir string, perm os.FileMode) error
	// List returns the names of a directory's entries (base names only),
	// sorted. The returned slice belongs to the caller.
	List(dir string) ([]string, error)
	// Stat describes the named file.
	Stat(name string) (os.FileInfo, error)
	// Lock takes an exclusive lock on the named file, creating it if
	// needed, so that a second process (or a second Lock on the same FS)
	// cannot open the same store. It fails at once with an error wrapping
	// ErrLocked if the lock is held. Closing the returned Closer releases it.
	Lock(name string) (io.Closer, error)
	// PathJoin joins path elements with the separator of the FS.
	PathJoin(elem ...string) string
}

// ErrLocked is returned by Lock when another holder has the lock.
var ErrLocked = errors.New("vfs: file is locked by another process")
