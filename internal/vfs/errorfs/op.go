package errorfs

import "fmt"

// OpKind is the kind of a filesystem operation.
type OpKind uint8

// The kinds of operations an FS counts and may fail. Every call through
// an FS or one of its Files is one op, except FS.PathJoin (pure) and the
// Close of a Closer returned by Lock (never failed, not counted).
const (
	// OpCreate is FS.Create.
	OpCreate OpKind = iota
	// OpOpen is FS.Open and FS.OpenReadWrite.
	OpOpen
	// OpOpenDir is FS.OpenDir.
	OpOpenDir
	// OpRead is File.Read and File.ReadAt.
	OpRead
	// OpWrite is File.Write.
	OpWrite
	// OpSync is File.Sync on a file.
	OpSync
	// OpDirSync is File.Sync on a handle from OpenDir.
	OpDirSync
	// OpTruncate is File.Truncate.
	OpTruncate
	// OpClose is File.Close. An injected Close error is returned after the
	// underlying file has been closed all the same, as close(2) does.
	OpClose
	// OpRemove is FS.Remove.
	OpRemove
	// OpRename is FS.Rename; Op.Path is the old name.
	OpRename
	// OpMkdirAll is FS.MkdirAll.
	OpMkdirAll
	// OpList is FS.List.
	OpList
	// OpStat is FS.Stat and File.Size.
	OpStat
	// OpLock is FS.Lock.
	OpLock
	numOpKinds
)

var opKindNames = [numOpKinds]string{
	OpCreate:   "create",
	OpOpen:     "open",
	OpOpenDir:  "opendir",
	OpRead:     "read",
	OpWrite:    "write",
	OpSync:     "sync",
	OpDirSync:  "dirsync",
	OpTruncate: "truncate",
	OpClose:    "close",
	OpRemove:   "remove",
	OpRename:   "rename",
	OpMkdirAll: "mkdirall",
	OpList:     "list",
	OpStat:     "stat",
	OpLock:     "lock",
}

// String returns the kind's lower-case name, such as "dirsync".
func (k OpKind) String() string {
	if k < numOpKinds {
		return opKindNames[k]
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Mutating reports whether ops of kind k change the filesystem: Create,
// Write, Sync, DirSync, Truncate, Remove, Rename, MkdirAll and Lock.
func (k OpKind) Mutating() bool {
	switch k {
	case OpCreate, OpWrite, OpSync, OpDirSync, OpTruncate, OpRemove,
		OpRename, OpMkdirAll, OpLock:
		return true
	}
	return false
}

// Op describes one operation, as an Injector sees it.
type Op struct {
	// Kind is what the operation does.
	Kind OpKind
	// Path is the name the operation was called with: the file's name for
	// File methods, the old name for Rename.
	Path string
	// Index numbers the operations through one FS from 0, in the order they
	// started. In a deterministic workload an index names the same
	// operation on every run, so a failure at index i can be replayed.
	Index int64
}

// String formats the op as "#12 write dir/000001.log".
func (o Op) String() string {
	return fmt.Sprintf("#%d %s %s", o.Index, o.Kind, o.Path)
}
