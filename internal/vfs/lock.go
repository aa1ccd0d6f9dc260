package vfs

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// heldLocks records the lock files this process holds through Default,
// by absolute path, so that a second Lock of the same path in this process
// fails even where the OS lock would not stop it (flock is per open file
// description on Linux and BSD, so it does conflict across two opens of
// the same file, but fcntl-style locks and the fallback do not).
var heldLocks struct {
	sync.Mutex
	paths map[string]bool
}

// fileLock is the Closer Default.Lock returns.
type fileLock struct {
	path   string
	f      *os.File
	closed atomic.Bool
}

// lockFile takes the lock on the file at the absolute path abs.
func lockFile(abs string) (io.Closer, error) {
	if !claimPath(abs) {
		return nil, fmt.Errorf("vfs: lock %s: held by this process: %w", abs, ErrLocked)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		releasePath(abs)
		return nil, fmt.Errorf("vfs: lock %s: %w", abs, err)
	}
	if err := osLock(f); err != nil {
		f.Close()
		releasePath(abs)
		return nil, fmt.Errorf("vfs: lock %s: %w", abs, err)
	}
	return &fileLock{path: abs, f: f}, nil
}

// Close releases the lock. A second Close returns nil.
func (l *fileLock) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	err := osUnlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	releasePath(l.path)
	if err != nil {
		return fmt.Errorf("vfs: unlock %s: %w", l.path, err)
	}
	return nil
}

// claimPath marks abs as locked by this process. It reports false if it
// already was.
func claimPath(abs string) bool {
	heldLocks.Lock()
	defer heldLocks.Unlock()
	if heldLocks.paths[abs] {
		return false
	}
	if heldLocks.paths == nil {
		heldLocks.paths = make(map[string]bool)
	}
	heldLocks.paths[abs] = true
	return true
}

func releasePath(abs string) {
	heldLocks.Lock()
	delete(heldLocks.paths, abs)
	heldLocks.Unlock()
}
