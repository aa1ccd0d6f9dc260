// Package lsm is strata's public API: a transactional key-value store for
// the local state of stream processors.
//
// A DB holds committed data. A Txn collects writes in an overlay that only
// it (and ReadUncommitted readers) can see; Commit makes all of them, and
// the changelog offsets staged with SetOffset, durable and visible at once,
// as one record of the write-ahead log. After a crash, Open recovers exactly
// the committed transactions, and CommittedOffsets tells where to resume.
package lsm

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/failpoint"
	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/manifest"
	"github.com/stratadb/strata/sstable"
	"github.com/stratadb/strata/txn"
	"github.com/stratadb/strata/wal"
)

// DB is an open store. All its methods are safe for concurrent use. Close it
// when done; every method of a closed (or nil) DB returns ErrClosed.
type DB struct {
	dirname string
	opts    Options
	fs      vfs.FS
	lock    io.Closer

	closed atomic.Bool
	// readOnly holds the first WAL failure; once set, writes fail.
	readOnly atomic.Pointer[error]

	// visibleSeq is the sequence number up to which commits are visible.
	visibleSeq atomic.Uint64
	// rs is the current set of memtables readers consult.
	rs atomic.Pointer[readState]

	// commit orders commits: it hands out sequence numbers, appends to the
	// WAL in sequence order, and rotates memtables and WAL files.
	commit struct {
		sync.Mutex
		nextSeq base.SeqNum
		slot    *memSlot // the active memtable
		log     *wal.Writer
	}
	// mu guards the version set, the memtables waiting to be flushed and
	// the background work. Lock order: d.commit's mutex, then mu.
	mu struct {
		sync.Mutex
		// cond is broadcast when a flush or compaction ends, when the DB
		// fails and when it closes: stalled writers and idle background
		// goroutines wait on it.
		cond     sync.Cond
		current  *manifest.Version
		state    manifest.State
		manifest *manifest.Writer // nil once closed (an in-memory store has one on its memory filesystem)
		// imm are the full memtables waiting to be flushed, oldest first.
		imm []*flushable
		// activeLog is the WAL of the active memtable.
		activeLog uint64
		flushing  bool
		// compacting is set while a compaction (background or DB.Compact)
		// runs: one at a time.
		compacting bool
		closing    bool
		// closed is set once Close no longer owns the directory: files are
		// no longer deleted.
		closed bool
		// compactPointer is, per level, the largest key of the last table
		// compacted out of it: the next one starts after it.
		compactPointer [manifest.NumLevels][]byte
	}
	// wal and walNum are the WAL being written (its number, read by
	// rotations and Metrics, which must not wait for d.commit's mutex).
	wal    atomic.Pointer[wal.Writer]
	walNum atomic.Uint64
	// fileNum is the next file number: WALs, tables and manifests share it.
	fileNum atomic.Uint64
	cache   *sstable.Cache
	tables  *sstable.TableCache
	// bg tracks the background goroutines; closingFlag tells a running
	// compaction to stop.
	bg          sync.WaitGroup
	closingFlag atomic.Bool
	// slowdown holds commits to Options.DelayedWriteRate while level 0 is
	// deep (see throttle).
	slowdown struct {
		on   atomic.Bool
		mu   sync.Mutex
		debt int64
	}
	// applyMu makes the memtable single-writer.
	applyMu sync.Mutex
	// publish makes commits visible in sequence order.
	publish struct {
		sync.Mutex
		pending []*commitReq
		halted  error // the failure that stopped publication
	}

	// open transactions, for ReadUncommitted readers.
	txns struct {
		sync.Mutex
		open map[*Txn]struct{}
	}
	uncommitted atomic.Int64
	stamp       atomic.Uint64
	// snapshots pins the sequence numbers of open snapshots and iterators.
	snapshots snapshotList

	stats dbStats
	// loadedManifest names the manifest Open loaded, for errors.
	loadedManifest string
	// salvaged lists what Options.Salvage dropped at Open.
	salvaged []SalvagedFile
}

// SalvagedFile describes WAL bytes that Options.Salvage dropped at Open.
type SalvagedFile struct {
	// File is the WAL, CopiedTo the copy of it set aside in the store's
	// directory.
	File, CopiedTo string
	// Offset is where the dropped bytes start (the records before it were
	// kept) and DroppedBytes how many were dropped.
	Offset, DroppedBytes int64
	// Reason is the damage found, or why a later WAL was dropped.
	Reason string
}

// Salvaged returns what Options.Salvage dropped when the store was opened:
// nothing for a store that opened without damage. The slice is the
// caller's.
func (d *DB) Salvaged() []SalvagedFile {
	if d.check() != nil {
		return nil
	}
	return slices.Clone(d.salvaged)
}

// dbStats counts what Metrics reports.
type dbStats struct {
	commits     atomic.Int64
	commitBytes atomic.Int64
	rotations   atomic.Int64

	flushes, flushBytes                     atomic.Int64
	compactions, compactBytesIn, compactOut atomic.Int64
	trivialMoves                            atomic.Int64
	tablesDeleted, manifestRolls            atomic.Int64
	stallNanos, slowdownNanos, stalls       atomic.Int64
}

// check returns ErrClosed for a nil or closed DB.
func (d *DB) check() error {
	if d == nil || d.closed.Load() {
		return ErrClosed
	}
	return nil
}

// writable returns why the DB cannot take writes, if it cannot.
func (d *DB) writable() error {
	if err := d.check(); err != nil {
		return err
	}
	if p := d.readOnly.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrReadOnly, *p)
	}
	return nil
}

// fail turns the DB read-only after a WAL, manifest or flush failure and
// returns the error to give the caller. It wakes the writers stalled on
// d.mu.cond; the caller must not hold d.mu (see failLocked).
func (d *DB) fail(err error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failLocked(err)
}

// setFailed records the first failure and returns the error to give the
// caller.
func (d *DB) setFailed(err error) error {
	d.readOnly.CompareAndSwap(nil, &err)
	return fmt.Errorf("%w: %w", ErrReadOnly, err)
}

// Close stops the background flush and compaction (a running one is
// abandoned: its work is redone after the next Open), syncs and closes the
// WAL and the manifest, and releases the store. Transactions still open can
// no longer commit; iterators and snapshots still open stop working.
// Memtables are not flushed: the WAL holds them. If a failure made the store
// read-only, Close returns it. Close is idempotent.
func (d *DB) Close() error {
	if d == nil || !d.closed.CompareAndSwap(false, true) {
		return nil
	}
	d.closingFlag.Store(true)
	d.mu.Lock()
	d.mu.closing = true
	d.mu.cond.Broadcast()
	flushing := d.mu.flushing
	d.mu.Unlock()
	if flushing {
		failpoint.Hit(failpoint.CloseMidFlush)
	}
	d.bg.Wait()
	// The WAL, and the memtables: a closed DB holds no memory (open
	// iterators keep what they read).
	d.commit.Lock()
	var err error
	if d.commit.log != nil {
		err = closeWAL(d.commit.log)
		d.commit.log = nil
	}
	d.commit.slot = nil
	d.commit.Unlock()
	d.mu.Lock()
	for d.mu.compacting { // a compaction DB.Compact runs on another goroutine
		d.mu.cond.Wait()
	}
	err = errors.Join(err, d.mu.manifest.Close())
	d.mu.manifest = nil
	d.mu.imm = nil
	d.installReadStateLocked(nil)
	d.mu.closed = true
	d.mu.Unlock()
	err = errors.Join(err, d.tables.Close(), d.lock.Close())
	d.cache.Clear() // the cache is the DB's own; a read still finishing may re-add a block
	if p := d.readOnly.Load(); p != nil && err == nil {
		err = fmt.Errorf("%w: %w", ErrReadOnly, *p)
	}
	return err
}

// Get returns a copy of the committed value of key, or ErrNotFound.
func (d *DB) Get(key []byte) ([]byte, error) { return copyValue(d.get(key)) }

// AppendValue appends the committed value of key to dst and returns the
// extended slice, or ErrNotFound. With room in dst it allocates nothing.
func (d *DB) AppendValue(dst, key []byte) ([]byte, error) {
	v, err := d.get(key)
	return appendValue(dst, v, err)
}

// get returns the committed value of key, aliasing the store's memory.
func (d *DB) get(key []byte) ([]byte, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	return d.getAt(key, seqLatest)
}

// getAt returns the committed value of key in the default namespace as of
// seq (seqLatest: the newest), aliasing the store's memory.
func (d *DB) getAt(key []byte, seq base.SeqNum) ([]byte, error) {
	var buf [64]byte
	return d.getCommitted(base.DefaultNamespace, prefixKey(buf[:0], base.DefaultNamespace, key), seq)
}

// copyValue returns a copy of a value a lookup returned, for the Get
// methods, which hand out memory the caller owns.
func copyValue(v []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	return append(make([]byte, 0, len(v)), v...), nil
}

// appendValue appends a value a lookup returned to dst, for the
// AppendValue methods.
func appendValue(dst, v []byte, err error) ([]byte, error) {
	if err != nil {
		return dst, err
	}
	return append(dst, v...), nil
}

// Set commits key = value as a transaction of its own.
func (d *DB) Set(key, value []byte) error {
	return d.applyOne(base.DefaultNamespace, base.KindSet, key, value)
}

// Delete commits the removal of key as a transaction of its own. Deleting
// a missing key is not an error.
func (d *DB) Delete(key []byte) error {
	return d.applyOne(base.DefaultNamespace, base.KindDelete, key, nil)
}

// applyOne commits one write to key in namespace ns.
func (d *DB) applyOne(ns base.NamespaceID, kind base.Kind, key, value []byte) error {
	if err := d.writable(); err != nil {
		return err
	}
	if err := checkSizes(key, value); err != nil {
		return err
	}
	var b txn.Batch
	var buf [64]byte
	pkey := prefixKey(buf[:0], ns, key)
	b.Grow(txn.MaxEntryOverhead + len(pkey) + len(value)) // the memtable keeps all of it
	if kind == base.KindSet {
		b.Set(pkey, value)
	} else {
		b.Delete(pkey)
	}
	return d.commitRepr(b.Repr(), b.Count(), d.opts.NoSync)
}

// prefixKey appends the namespace prefix and key to dst.
func prefixKey(dst []byte, ns base.NamespaceID, key []byte) []byte {
	return append(base.AppendNamespace(dst, ns), key...)
}

// checkSizes rejects keys and values the engine cannot store.
func checkSizes(key, value []byte) error {
	if len(key) > MaxKeySize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrKeyTooLarge, len(key), MaxKeySize)
	}
	if len(value) > MaxValueSize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrValueTooLarge, len(value), MaxValueSize)
	}
	return nil
}

// Limits of keys and values.
const (
	// MaxKeySize is the longest key, in bytes.
	MaxKeySize = txn.MaxKeySize - 4
	// MaxValueSize is the longest value, in bytes.
	MaxValueSize = txn.MaxValueSize
)
