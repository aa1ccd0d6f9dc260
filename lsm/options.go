package lsm

import (
	"fmt"
	"log/slog"

	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/sstable"
)

// Options configure a DB. The zero value of every field means its default,
// and a nil *Options is valid.
type Options struct {
	// InMemory keeps the whole store in RAM: no files are read or written,
	// the directory passed to Open is ignored, and everything is gone after
	// Close. Commits skip the WAL; memtables are flushed and compacted into
	// tables held in memory, as on disk, so reads stay fast however much
	// the store holds. The default value is false.
	InMemory bool

	// NoSync makes Commit return once the commit record has been written to
	// the operating system (it survives the process being killed) without
	// waiting for fdatasync (a power cut may lose a suffix of commits, never
	// part of one). The default value is false: every Commit is durable on
	// return, with concurrent committers sharing one sync.
	NoSync bool

	// MemTableSize is the size in bytes at which the active memtable is
	// rotated into a new WAL file. A single commit larger than it gets a
	// memtable of its own. The default value is 64 MiB. Each memtable
	// allocates its index arena of this size up front, and the batches it
	// keeps live beside it, so a memtable can hold up to about twice this
	// size in memory (see memtable.New), for up to
	// MemTableStopWritesThreshold memtables at once.
	MemTableSize int64

	// MaxUncommittedBytes is the soft limit of the bytes held by all open
	// transactions of the DB together: past it, CommitNeeded reports true.
	// The default value is 64 MiB.
	MaxUncommittedBytes int64

	// HardLimitFactor times MaxUncommittedBytes is the hard limit: a write
	// that would pass it fails with ErrTxnTooLarge. The default value is 4.
	HardLimitFactor int64

	// MemTableStopWritesThreshold is the number of memtables (the active
	// one and those waiting to be flushed) at which writes stall until a
	// flush finishes. The default value is 4.
	MemTableStopWritesThreshold int

	// L0CompactionThreshold is the number of level-0 tables at which a
	// compaction into level 1 starts. The default value is 4.
	L0CompactionThreshold int

	// L0SlowdownWritesThreshold is the number of level-0 tables at which
	// commits are slowed down to DelayedWriteRate, giving compaction time to
	// catch up. The default value is 12.
	L0SlowdownWritesThreshold int

	// L0StopWritesThreshold is the number of level-0 tables at which
	// writes stall until compaction brings the count down. The default
	// value is 20.
	L0StopWritesThreshold int

	// DelayedWriteRate is the rate, in bytes of commit records per second,
	// that slowed-down writes are held to. The default value is 16 MiB.
	DelayedWriteRate int64

	// LevelBaseBytes is the target size of level 1; each deeper level
	// targets LevelMultiplier times the level above. The default value is
	// 64 MiB.
	LevelBaseBytes int64

	// LevelMultiplier is the ratio of the target sizes of adjacent levels
	// below level 1. The default value is 10.
	LevelMultiplier int64

	// TargetFileSize is the size at which compaction cuts its output into
	// a new table (a flush writes one table per memtable). The default
	// value is 4 MiB.
	TargetFileSize int64

	// BlockSize is the size of a table's data blocks before compression,
	// at most 64 MiB. The default value is 4 KiB.
	BlockSize int

	// Compression is the codec of the tables' blocks. The default value is
	// SnappyCompression.
	Compression Compression

	// BloomBitsPerKey sizes the Bloom filter of each table; a negative
	// value writes tables without a filter; at most 1000. The default value
	// is 10 (about 1% false positives).
	BloomBitsPerKey int

	// BlockCacheSize is the memory, in bytes, of the cache of decoded data
	// blocks. The default value is 64 MiB.
	BlockCacheSize int64

	// MaxOpenTables bounds the tables kept open (file descriptors and
	// their index and filter blocks). The default value is 1000.
	MaxOpenTables int

	// MaxManifestFileSize is the size past which the manifest is started
	// afresh with a snapshot of the current version. The default value is
	// 16 MiB.
	MaxManifestFileSize int64

	// DisableAutomaticCompactions turns the background compactions off:
	// memtables are still flushed, and DB.Compact still compacts. Tests
	// and bulk loads use it. The default value is false.
	DisableAutomaticCompactions bool

	// Salvage opens a store whose WAL is damaged instead of failing with
	// ErrCorruption: replay stops at the first damaged record, the damaged
	// WAL and every later one are copied aside (NNNNNN.log.salvaged) and
	// dropped from the store, which opens to the commits before the damage.
	// DB.Salvaged reports what was dropped. Commits after the damage are
	// lost: use it only when the alternative is losing the store. Damage
	// that loses commits before intact ones (a sequence gap, a damaged
	// manifest or table) is not salvaged: Open still fails. The default
	// value is false.
	Salvage bool

	// Logger receives the engine's events: recovery (WAL files replayed,
	// torn tails dropped, obsolete files removed), memtable and WAL
	// rotations, flushes, compactions and write stalls. A nil Logger is
	// silent. The default value is nil.
	Logger *slog.Logger

	// FS is the filesystem the store lives on; tests use it to inject
	// faults or simulate crashes. The default value is the operating
	// system's filesystem.
	FS vfs.FS
}

// Compression chooses the codec of table blocks.
type Compression = sstable.Compression

// The codecs of table blocks.
const (
	SnappyCompression = sstable.SnappyCompression
	ZstdCompression   = sstable.ZstdCompression
	NoCompression     = sstable.NoCompression
)

const (
	defaultMemTableSize        = 64 << 20
	defaultMaxUncommittedBytes = 64 << 20
	defaultHardLimitFactor     = 4
	minMemTableSize            = 64 << 10
)

// setDefault sets *v to def when it is zero.
func setDefault[T int | int64](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

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
	setDefault(&c.MemTableStopWritesThreshold, 4)
	setDefault(&c.L0CompactionThreshold, 4)
	setDefault(&c.L0SlowdownWritesThreshold, 12)
	setDefault(&c.L0StopWritesThreshold, 20)
	setDefault(&c.DelayedWriteRate, 16<<20)
	setDefault(&c.LevelBaseBytes, 64<<20)
	setDefault(&c.LevelMultiplier, 10)
	setDefault(&c.TargetFileSize, 4<<20)
	setDefault(&c.BlockSize, 4<<10)
	setDefault(&c.BloomBitsPerKey, 10)
	setDefault(&c.BlockCacheSize, 64<<20)
	setDefault(&c.MaxOpenTables, 1000)
	setDefault(&c.MaxManifestFileSize, 16<<20)
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
	case o.MemTableStopWritesThreshold < 2:
		return fmt.Errorf("lsm: Options.MemTableStopWritesThreshold %d is below 2", o.MemTableStopWritesThreshold)
	case o.L0CompactionThreshold < 1:
		return fmt.Errorf("lsm: Options.L0CompactionThreshold %d is below 1", o.L0CompactionThreshold)
	case o.L0SlowdownWritesThreshold < o.L0CompactionThreshold:
		return fmt.Errorf("lsm: Options.L0SlowdownWritesThreshold %d is below L0CompactionThreshold %d", o.L0SlowdownWritesThreshold, o.L0CompactionThreshold)
	case o.L0StopWritesThreshold < o.L0SlowdownWritesThreshold:
		return fmt.Errorf("lsm: Options.L0StopWritesThreshold %d is below L0SlowdownWritesThreshold %d", o.L0StopWritesThreshold, o.L0SlowdownWritesThreshold)
	case o.DelayedWriteRate < 1:
		return fmt.Errorf("lsm: Options.DelayedWriteRate %d is not positive", o.DelayedWriteRate)
	case o.LevelBaseBytes < 1:
		return fmt.Errorf("lsm: Options.LevelBaseBytes %d is not positive", o.LevelBaseBytes)
	case o.TargetFileSize < 1:
		return fmt.Errorf("lsm: Options.TargetFileSize %d is not positive", o.TargetFileSize)
	case o.BlockCacheSize < 0:
		return fmt.Errorf("lsm: Options.BlockCacheSize %d is negative", o.BlockCacheSize)
	case o.MaxManifestFileSize < 1:
		return fmt.Errorf("lsm: Options.MaxManifestFileSize %d is not positive", o.MaxManifestFileSize)
	case o.BlockSize > sstable.MaxBlockSize:
		return fmt.Errorf("lsm: Options.BlockSize %d is above %d", o.BlockSize, sstable.MaxBlockSize)
	case o.BloomBitsPerKey > sstable.MaxFilterBitsPerKey:
		return fmt.Errorf("lsm: Options.BloomBitsPerKey %d is above %d", o.BloomBitsPerKey, sstable.MaxFilterBitsPerKey)
	case o.LevelMultiplier < 2:
		return fmt.Errorf("lsm: Options.LevelMultiplier %d is below 2", o.LevelMultiplier)
	case o.MaxOpenTables < 1:
		return fmt.Errorf("lsm: Options.MaxOpenTables %d is below 1", o.MaxOpenTables)
	}
	if err := o.tableOptions().Validate(); err != nil {
		return fmt.Errorf("lsm: Options: %w", err)
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

// tableOptions returns the options of the tables the DB writes.
func (o *Options) tableOptions() sstable.WriterOptions {
	return sstable.WriterOptions{BlockSize: o.BlockSize, Compression: o.Compression, FilterBitsPerKey: o.BloomBitsPerKey}
}
