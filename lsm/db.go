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
	"sync"
	"sync/atomic"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/memtable"
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
		nextSeq  base.SeqNum
		slot     *memSlot // the active memtable
		log      *wal.Writer
		logNum   uint64
		nextFile uint64
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
}

// readState is an immutable list of the memtables that hold the store,
// newest first.
type readState struct {
	mems []*memtable.MemTable
}

// dbStats counts what Metrics reports.
type dbStats struct {
	commits     atomic.Int64
	commitBytes atomic.Int64
	rotations   atomic.Int64
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

// fail turns the DB read-only after a WAL failure and returns the error to
// give the caller.
func (d *DB) fail(err error) error {
	d.readOnly.CompareAndSwap(nil, &err)
	return fmt.Errorf("%w: %w", ErrReadOnly, err)
}

// Close flushes and syncs the WAL and releases the store. Transactions still
// open can no longer commit. Close is idempotent.
func (d *DB) Close() error {
	if d == nil || !d.closed.CompareAndSwap(false, true) {
		return nil
	}
	d.commit.Lock()
	var err error
	if d.commit.log != nil {
		err = d.commit.log.Close()
		d.commit.log = nil
	}
	d.commit.Unlock()
	if d.lock != nil {
		err = errors.Join(err, d.lock.Close())
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
	return d.getAt(key, d.visibleSeq.Load())
}

// getAt returns the committed value of key in the default namespace as of
// seq, aliasing the store's memory.
func (d *DB) getAt(key []byte, seq base.SeqNum) ([]byte, error) {
	var buf [64]byte
	return d.getCommitted(prefixKey(buf[:0], base.DefaultNamespace, key), seq)
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

// getCommitted returns the newest value of the prefixed key at or below
// seq. The result aliases the memtable.
func (d *DB) getCommitted(pkey []byte, seq base.SeqNum) ([]byte, error) {
	for _, m := range d.rs.Load().mems {
		if v, kind, ok := m.Get(pkey, seq); ok {
			if kind == base.KindDelete {
				return nil, ErrNotFound
			}
			return v, nil
		}
	}
	return nil, ErrNotFound
}

// Set commits key = value as a transaction of its own.
func (d *DB) Set(key, value []byte) error {
	return d.applyOne(base.KindSet, key, value)
}

// Delete commits the removal of key as a transaction of its own. Deleting
// a missing key is not an error.
func (d *DB) Delete(key []byte) error {
	return d.applyOne(base.KindDelete, key, nil)
}

func (d *DB) applyOne(kind base.Kind, key, value []byte) error {
	if err := d.writable(); err != nil {
		return err
	}
	if err := checkSizes(key, value); err != nil {
		return err
	}
	var b txn.Batch
	var buf [64]byte
	pkey := prefixKey(buf[:0], base.DefaultNamespace, key)
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
