package lsm

import (
	"fmt"
	"log/slog"

	"github.com/stratadb/strata/internal/vfs"
)

// Options configure a DB. The zero value of every field means its default,
// and a nil *Options is valid.
type Options struct {
	// InMemory keeps the whole store in RAM: no files are read or written,
	// the directory passed to Open is ignored, and everything is gone after
	// Close. The default value is false.
	InMemory bool

	// NoSync makes Commit return once the commit record has been written to
	// the operating system (it survives the process being killed) without
	// waiting for fdatasync (a power cut may lose a suffix of commits, never
	// part of one). The default value is false: every Commit is durable on
	// return, with concurrent committers sharing one sync.
	NoSync bool

	// MemTableSize is the size in bytes at which the active memtable is
	// rotated into a new WAL file. A single commit larger than it gets a
	// memtable of its own. The default value is 64 MiB.
	MemTableSize int64

	// MaxUncommittedBytes is the soft limit of the bytes held by all open
	// transactions of the DB together: past it, CommitNeeded reports true.
	// The default value is 64 MiB.
	MaxUncommittedBytes int64

	// HardLimitFactor times MaxUncommittedBytes is the hard limit: a write
	// that would pass it fails with ErrTxnTooLarge. The default value is 4.
	HardLimitFactor int64

	// Logger receives the engine's events: recovery (WAL files replayed,
	// torn tails dropped), memtable and WAL rotations. A nil Logger is
	// silent. The default value is nil.
	Logger *slog.Logger

	// FS is the filesystem the store lives on; tests use it to inject
	// faults or simulate crashes. The default value is the operating
	// system's filesystem.
	FS vfs.FS
}

const (
	defaultMemTableSize        = 64 << 20
	defaultMaxUncommittedBytes = 64 << 20
	defaultHardLimitFactor     = 4
	minMemTableSize            = 64 << 10
)

// withDefaults returns a copy of o with every zero field set to its default.
func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.MemTableSize == 0 {
		c.MemTableSize = defaultMemTableSize
	}
	if c.MaxUncommittedBytes == 0 {
		c.MaxUncommittedBytes = defaultMaxUncommittedBytes
	}
	if c.HardLimitFactor == 0 {
		c.HardLimitFactor = defaultHardLimitFactor
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.FS == nil {
		c.FS = vfs.Default // an in-memory store uses no filesystem
	}
	return c
}

// validate reports options that cannot work.
func (o *Options) validate() error {
	switch {
	case o.MemTableSize < minMemTableSize:
		return fmt.Errorf("lsm: Options.MemTableSize %d is below the minimum %d", o.MemTableSize, minMemTableSize)
	case o.MemTableSize > 4<<30-1:
		return fmt.Errorf("lsm: Options.MemTableSize %d is above the maximum 4 GiB", o.MemTableSize)
	case o.MaxUncommittedBytes < 0:
		return fmt.Errorf("lsm: Options.MaxUncommittedBytes %d is negative", o.MaxUncommittedBytes)
	case o.HardLimitFactor < 1:
		return fmt.Errorf("lsm: Options.HardLimitFactor %d is below 1", o.HardLimitFactor)
	}
	return nil
}

// IterOptions bound an iterator to the keys in [LowerBound, UpperBound).
// A nil bound is open. A nil *IterOptions is valid.
type IterOptions struct {
	LowerBound []byte
	UpperBound []byte
}

// TxnOptions configure a transaction. A nil *TxnOptions is valid.
type TxnOptions struct {
	// NoSync overrides Options.NoSync for this transaction's commit when
	// true. The default value is false (the DB's setting applies).
	NoSync bool
}

// IsolationLevel selects what a Reader sees.
type IsolationLevel int

const (
	// ReadCommitted readers see committed data only.
	ReadCommitted IsolationLevel = iota
	// ReadUncommitted readers also see the writes of open transactions;
	// when several transactions wrote a key, the latest write wins.
	ReadUncommitted
)

func (l IsolationLevel) String() string {
	switch l {
	case ReadCommitted:
		return "ReadCommitted"
	case ReadUncommitted:
		return "ReadUncommitted"
	}
	return fmt.Sprintf("IsolationLevel(%d)", int(l))
}
