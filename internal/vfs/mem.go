package vfs

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// MemFS is an in-memory FS that can simulate a power cut (see CrashClone).
// It is safe for concurrent use; a File's ReadAt may run concurrently with
// Write on another handle or the same one.
//
// Names use "/" as the separator and are cleaned; relative names are taken
// from the root, so "a/b", "/a/b" and "./a/../a/b" are the same file.
// Directories exist only once MkdirAll has made them (the root always
// exists): Create, Rename and Lock in a missing directory fail with an
// error matching os.ErrNotExist, as on a real filesystem. Errors are
// *os.PathError or *os.LinkError wrapping syscall errno values, so
// errors.Is(err, os.ErrNotExist) and friends work as with the os package.
//
// Durability follows POSIX strictly: a file's bytes are durable only up to
// its last File.Sync, and a directory's entries (files created, removed or
// renamed in it, and directories MkdirAll made in it) only up to the last
// Sync of a handle from OpenDir on that directory. A store that creates its
// own directory must therefore sync the parent too (see SyncDir).
type MemFS struct {
	mu struct {
		sync.Mutex
		// root is the directory "/": the directory entries of the whole
		// tree are guarded by mu (file bytes by each node's own lock).
		root *memNode
		// locks holds the cleaned names locked by Lock.
		locks map[string]bool
	}
}

// NewMem returns an empty MemFS holding only its root directory.
func NewMem() *MemFS {
	return newMemFS(newMemDir())
}

func newMemFS(root *memNode) *MemFS {
	m := &MemFS{}
	m.mu.root = root
	m.mu.locks = make(map[string]bool)
	return m
}

// cleanPath maps a name to its absolute cleaned form.
func cleanPath(name string) string { return path.Clean("/" + name) }

// lookupLocked returns the node named name.
func (m *MemFS) lookupLocked(op, name string) (*memNode, error) {
	p := cleanPath(name)
	n := m.mu.root
	if p == "/" {
		return n, nil
	}
	for _, part := range strings.Split(p[1:], "/") {
		if !n.isDir {
			return nil, pathErr(op, name, syscall.ENOTDIR)
		}
		if n = n.children[part]; n == nil {
			return nil, pathErr(op, name, syscall.ENOENT)
		}
	}
	return n, nil
}

// parentLocked returns the directory that holds name, and name's base.
func (m *MemFS) parentLocked(op, name string) (*memNode, string, error) {
	p := cleanPath(name)
	if p == "/" {
		return nil, "", pathErr(op, name, syscall.EINVAL)
	}
	dir, base := path.Split(p)
	d, err := m.lookupLocked(op, dir)
	if err != nil {
		return nil, "", pathErr(op, name, pathErrno(err))
	}
	if !d.isDir {
		return nil, "", pathErr(op, name, syscall.ENOTDIR)
	}
	return d, base, nil
}

// Create implements FS. Creating an existing file truncates it in place
// (its synced bytes stay synced until the next Sync).
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.parentLocked("open", name)
	if err != nil {
		return nil, err
	}
	n := d.children[base]
	switch {
	case n == nil:
		n = newMemFile()
		d.children[base] = n
	case n.isDir:
		return nil, pathErr("open", name, syscall.EISDIR)
	default:
		n.truncate(0)
	}
	return &memFile{fs: m, n: n, name: name, writable: true}, nil
}

// Open implements FS. Opening a directory succeeds, as with os.Open, but
// reading it fails.
func (m *MemFS) Open(name string) (File, error) {
	return m.open(name, false)
}

// OpenReadWrite implements FS.
func (m *MemFS) OpenReadWrite(name string) (File, error) {
	return m.open(name, true)
}

func (m *MemFS) open(name string, writable bool) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookupLocked("open", name)
	if err != nil {
		return nil, err
	}
	if writable && n.isDir {
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	return &memFile{fs: m, n: n, name: name, writable: writable}, nil
}

// OpenDir implements FS. Sync on the returned handle makes the directory's
// current entries durable.
func (m *MemFS) OpenDir(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookupLocked("opendir", name)
	if err != nil {
		return nil, err
	}
	if !n.isDir {
		return nil, pathErr("opendir", name, syscall.ENOTDIR)
	}
	return &memFile{fs: m, n: n, name: name}, nil
}

func (m *MemFS) syncDir(n *memNode) {
	m.mu.Lock()
	n.syncedChildren = maps.Clone(n.children)
	m.mu.Unlock()
}

// Remove implements FS. Open handles on a removed file keep working.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.parentLocked("remove", name)
	if err != nil {
		return err
	}
	n := d.children[base]
	switch {
	case n == nil:
		return pathErr("remove", name, syscall.ENOENT)
	case n.isDir && len(n.children) > 0:
		return pathErr("remove", name, syscall.ENOTEMPTY)
	}
	delete(d.children, base)
	return nil
}

// Rename implements FS with rename(2)'s rules: a file may replace a file,
// a directory may replace an empty directory.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	linkErr := func(err error) error {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	od, ob, err := m.parentLocked("rename", oldname)
	if err != nil {
		return linkErr(pathErrno(err))
	}
	nd, nb, err := m.parentLocked("rename", newname)
	if err != nil {
		return linkErr(pathErrno(err))
	}
	n := od.children[ob]
	if n == nil {
		return linkErr(syscall.ENOENT)
	}
	if od == nd && ob == nb {
		return nil
	}
	if err := renameCheck(n, nd.children[nb], cleanPath(oldname), cleanPath(newname)); err != nil {
		return linkErr(err)
	}
	nd.children[nb] = n
	delete(od.children, ob)
	return nil
}

// renameCheck applies rename(2)'s rules for moving n (at oldp) over
// target (at newp, nil if absent).
func renameCheck(n, target *memNode, oldp, newp string) error {
	if n.isDir && strings.HasPrefix(newp, oldp+"/") {
		return syscall.EINVAL
	}
	switch {
	case target == nil:
		return nil
	case target.isDir && !n.isDir:
		return syscall.EISDIR
	case target.isDir && len(target.children) > 0:
		return syscall.ENOTEMPTY
	case !target.isDir && n.isDir:
		return syscall.ENOTDIR
	}
	return nil
}

// MkdirAll implements FS. perm is ignored. The new directories become
// durable only when their parents are synced.
func (m *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := cleanPath(dir)
	if p == "/" {
		return nil
	}
	n := m.mu.root
	for _, part := range strings.Split(p[1:], "/") {
		c := n.children[part]
		if c == nil {
			c = newMemDir()
			n.children[part] = c
		} else if !c.isDir {
			return pathErr("mkdir", dir, syscall.ENOTDIR)
		}
		n = c
	}
	return nil
}

// List implements FS. The returned slice is the caller's.
func (m *MemFS) List(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookupLocked("readdir", dir)
	if err != nil {
		return nil, err
	}
	if !n.isDir {
		return nil, pathErr("readdir", dir, syscall.ENOTDIR)
	}
	return slices.Sorted(maps.Keys(n.children)), nil
}

// Stat implements FS.
func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookupLocked("stat", name)
	if err != nil {
		return nil, err
	}
	fi := &memFileInfo{name: path.Base(cleanPath(name)), dir: n.isDir, mod: n.modTime()}
	if !n.isDir {
		fi.size = n.size()
	}
	return fi, nil
}

// Lock implements FS: it creates the file if needed and fails with an
// error wrapping ErrLocked while another Lock of the same cleaned name on
// this MemFS is held. Locks are not carried into clones.
func (m *MemFS) Lock(name string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := cleanPath(name)
	if m.mu.locks[p] {
		return nil, fmt.Errorf("vfs: lock %s: %w", name, ErrLocked)
	}
	d, base, err := m.parentLocked("lock", name)
	if err != nil {
		return nil, err
	}
	if n := d.children[base]; n == nil {
		d.children[base] = newMemFile()
	} else if n.isDir {
		return nil, pathErr("lock", name, syscall.EISDIR)
	}
	m.mu.locks[p] = true
	return &memLock{fs: m, path: p}, nil
}

// PathJoin implements FS with path.Join.
func (m *MemFS) PathJoin(elem ...string) string { return path.Join(elem...) }

// pathErrno returns the error inside an *os.PathError, or err itself.
func pathErrno(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// memLock is the Closer MemFS.Lock returns.
type memLock struct {
	fs     *MemFS
	path   string
	closed atomic.Bool
}

// Close releases the lock. A second Close returns nil.
func (l *memLock) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.fs.mu.Lock()
	delete(l.fs.mu.locks, l.path)
	l.fs.mu.Unlock()
	return nil
}

// memFileInfo is the os.FileInfo of MemFS.Stat.
type memFileInfo struct {
	name string
	size int64
	dir  bool
	mod  time.Time
}

func (fi *memFileInfo) Name() string       { return fi.name }
func (fi *memFileInfo) Size() int64        { return fi.size }
func (fi *memFileInfo) ModTime() time.Time { return fi.mod }
func (fi *memFileInfo) IsDir() bool        { return fi.dir }
func (fi *memFileInfo) Sys() any           { return nil }

func (fi *memFileInfo) Mode() os.FileMode {
	if fi.dir {
		return os.ModeDir | 0o755
	}
	return 0o644
}
