package lsm

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/txn"
)

// Txn is a transaction: an overlay of writes that only it (and
// ReadUncommitted readers) can see until Commit makes all of them, and the
// offsets staged with SetOffset, durable and visible at once.
//
// A Txn belongs to one goroutine: its methods must not be called
// concurrently. You must Commit or Rollback every transaction: until then it
// holds memory that counts against Options.MaxUncommittedBytes. After Commit
// or Rollback, every method returns ErrTxnDone. Values returned by Get are
// copies the caller owns.
type Txn struct {
	db     *DB
	ov     *txn.Overlay
	noSync bool
	done   bool
	bytes  int64 // counted in db.uncommitted
	keyBuf []byte
	keyArr [48]byte // keyBuf's first backing array
}

// Begin starts a transaction. A nil o means the defaults. A transaction
// begun on a closed DB fails every operation with ErrClosed.
func (d *DB) Begin(o *TxnOptions) *Txn {
	t := &Txn{db: d, ov: txn.NewOverlay()}
	t.keyBuf = t.keyArr[:0]
	if o != nil {
		t.noSync = o.NoSync
	}
	if d.check() != nil {
		return t
	}
	if d.opts.NoSync {
		t.noSync = true
	}
	t.bytes = t.ov.ApproximateBytes()
	d.uncommitted.Add(t.bytes)
	d.txns.Lock()
	d.txns.open[t] = struct{}{}
	d.txns.Unlock()
	return t
}

// usable returns why t cannot be used, if it cannot.
func (t *Txn) usable() error {
	if t == nil || t.done {
		return ErrTxnDone
	}
	return t.db.check()
}

// Get returns a copy of key's value as this transaction sees it: its own
// writes first, then the committed data. It returns ErrNotFound if the key
// has no value.
func (t *Txn) Get(key []byte) ([]byte, error) { return copyValue(t.get(key)) }

// AppendValue appends key's value, as Get sees it, to dst and returns the
// extended slice, or ErrNotFound. With room in dst it allocates nothing.
func (t *Txn) AppendValue(dst, key []byte) ([]byte, error) {
	v, err := t.get(key)
	return appendValue(dst, v, err)
}

// get returns key's value as the transaction sees it, aliasing memory the
// caller must not modify.
func (t *Txn) get(key []byte) ([]byte, error) { return t.getIn(base.DefaultNamespace, key) }

// getIn returns key's value in namespace ns as the transaction sees it,
// aliasing the overlay's or the store's memory.
func (t *Txn) getIn(ns base.NamespaceID, key []byte) ([]byte, error) {
	if err := t.usable(); err != nil {
		return nil, err
	}
	t.keyBuf = prefixKey(t.keyBuf[:0], ns, key)
	if v, kind, ok := t.ov.Get(t.keyBuf); ok {
		if kind == base.KindDelete {
			return nil, ErrNotFound
		}
		return v, nil
	}
	return t.db.getCommitted(ns, t.keyBuf, seqLatest)
}

// Set writes key = value in the transaction. The transaction copies both;
// the caller may reuse them at once. If the write would take the DB past its
// hard limit of uncommitted bytes it fails with ErrTxnTooLarge and the
// transaction stays as it was.
func (t *Txn) Set(key, value []byte) error {
	return t.writeIn(base.DefaultNamespace, base.KindSet, key, value)
}

// Delete removes key in the transaction. Deleting a missing key is not an
// error.
func (t *Txn) Delete(key []byte) error {
	return t.writeIn(base.DefaultNamespace, base.KindDelete, key, nil)
}

// writeIn writes key in namespace ns.
func (t *Txn) writeIn(ns base.NamespaceID, kind base.Kind, key, value []byte) error {
	if err := t.writable(key, value); err != nil {
		return err
	}
	t.keyBuf = prefixKey(t.keyBuf[:0], ns, key)
	return t.write(kind, value)
}

// SetOffset stages the changelog offset of name (a topic partition, say).
// It lands with the transaction's data, in the same WAL record, and
// CommittedOffset reports it once the transaction has committed. Setting an
// offset twice keeps the last value.
func (t *Txn) SetOffset(name string, offset int64) error {
	if err := t.usable(); err != nil {
		return err
	}
	if len(name) > MaxKeySize {
		return fmt.Errorf("%w: offset name of %d bytes", ErrKeyTooLarge, len(name))
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(offset))
	t.keyBuf = append(base.AppendNamespace(t.keyBuf[:0], base.EngineNamespace), name...)
	return t.write(base.KindSet, v[:])
}

// writable returns why key = value cannot be written, if it cannot.
func (t *Txn) writable(key, value []byte) error {
	if err := t.usable(); err != nil {
		return err
	}
	return checkSizes(key, value)
}

// write applies one write of the prefixed key in t.keyBuf to the overlay,
// keeping the DB's count of uncommitted bytes. The caller checked that t is
// usable.
func (t *Txn) write(kind base.Kind, value []byte) error {
	d := t.db
	est := t.ov.EstimateWrite(t.keyBuf, value)
	if hard := d.hardLimit(); d.uncommitted.Add(est) > hard {
		d.uncommitted.Add(-est)
		return fmt.Errorf("%w: %d bytes are held by open transactions, the limit is %d",
			ErrTxnTooLarge, d.uncommitted.Load(), hard)
	}
	before := t.ov.ApproximateBytes()
	var err error
	if kind == base.KindSet {
		err = t.ov.Set(t.keyBuf, value, d.stamp.Add(1))
	} else {
		err = t.ov.Delete(t.keyBuf, d.stamp.Add(1))
	}
	delta := t.ov.ApproximateBytes() - before
	d.uncommitted.Add(delta - est)
	t.bytes += delta
	return err
}

// NewIterator returns an iterator over the transaction's writes merged over
// the data committed when the iterator is made. The iterator keeps that
// view: later writes of the transaction, and later commits, do not change
// it. Close the iterator before the transaction ends.
func (t *Txn) NewIterator(o *IterOptions) (*Iterator, error) {
	if err := t.usable(); err != nil {
		return nil, err
	}
	return t.db.newIterator(base.DefaultNamespace, o, []*txn.Overlay{t.ov}, seqLatest), nil
}

// Commit makes the transaction's writes and offsets durable and visible, all
// at once, as one WAL record. When it returns nil the transaction survives a
// crash of the process and, unless the DB or the transaction was opened
// with NoSync, a power cut. If it returns an I/O error, the transaction may
// or may not have been recorded; the DB then refuses further writes until it
// is reopened. ErrTxnTooLarge means that nothing of it was recorded and the
// DB stays writable. A transaction with no writes commits at once with no
// I/O. The transaction has ended once Commit returns, whatever the result.
func (t *Txn) Commit() error {
	if t == nil || t.done {
		return ErrTxnDone
	}
	defer t.end()
	if err := t.db.writable(); err != nil {
		return err
	}
	return t.db.commitOverlay(t.ov, t.noSync)
}

// Rollback discards the transaction.
func (t *Txn) Rollback() error {
	if t == nil || t.done {
		return ErrTxnDone
	}
	t.end()
	return nil
}

// end retires the transaction and gives its bytes back.
func (t *Txn) end() {
	t.done = true
	d := t.db
	if d == nil {
		return
	}
	if d.txns.open != nil {
		d.txns.Lock()
		delete(d.txns.open, t)
		d.txns.Unlock()
	}
	d.uncommitted.Add(-t.bytes)
	t.bytes = 0
}

// ApproximateBytes returns the memory the transaction holds: its keys,
// values and index.
func (t *Txn) ApproximateBytes() int64 {
	if t == nil || t.done {
		return 0
	}
	return t.ov.ApproximateBytes()
}

// ApproximateEntries returns the number of distinct keys (and offsets) the
// transaction has written.
func (t *Txn) ApproximateEntries() int {
	if t == nil || t.done {
		return 0
	}
	return t.ov.Entries()
}

// Update runs fn in a new transaction and commits it if fn returns nil;
// otherwise it rolls back and returns fn's error.
func (d *DB) Update(fn func(*Txn) error) error {
	t := d.Begin(nil)
	defer t.Rollback() // after Commit, a no-op
	if err := fn(t); err != nil {
		return err
	}
	return t.Commit()
}

// hardLimit is the most uncommitted bytes the DB accepts.
func (d *DB) hardLimit() int64 {
	m, f := d.opts.MaxUncommittedBytes, d.opts.HardLimitFactor
	if m > math.MaxInt64/f {
		return math.MaxInt64
	}
	return m * f
}

// CommitNeeded reports whether the open transactions hold more than
// Options.MaxUncommittedBytes: time to commit.
func (d *DB) CommitNeeded() bool {
	if d.check() != nil {
		return false
	}
	return d.UncommittedBytes() > d.opts.MaxUncommittedBytes
}

// UncommittedBytes returns the bytes held by all open transactions of the
// DB together.
func (d *DB) UncommittedBytes() int64 {
	if d == nil {
		return 0
	}
	return d.uncommitted.Load()
}
