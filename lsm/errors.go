package lsm

import (
	"errors"

	"github.com/stratadb/strata/internal/base"
)

// Errors callers branch on. Test for them with errors.Is: the engine wraps
// them with context (which key, file or offset).
var (
	// ErrNotFound is returned by Get when the key has no value.
	ErrNotFound = errors.New("lsm: not found")
	// ErrClosed is returned by every operation on a closed (or nil) DB and
	// on the transactions, readers and iterators of a closed DB.
	ErrClosed = errors.New("lsm: closed")
	// ErrTxnDone is returned by every use of a transaction after Commit or
	// Rollback.
	ErrTxnDone = errors.New("lsm: transaction already committed or rolled back")
	// ErrTxnTooLarge is returned by a write that would take the open
	// transactions of a DB past Options.MaxUncommittedBytes times
	// Options.HardLimitFactor. The write is not applied; the transaction
	// stays as it was. Commit returns it for a transaction too large for
	// one memtable (about 4 GiB with its index): the transaction then
	// ends, nothing of it is recorded, and the DB stays writable.
	ErrTxnTooLarge = errors.New("lsm: uncommitted data would exceed the hard memory limit")
	// ErrCorruption marks damaged on-disk data; the error names the file and
	// offset.
	ErrCorruption = base.ErrCorruption
	// ErrKeyTooLarge and ErrValueTooLarge reject oversize input.
	ErrKeyTooLarge   = errors.New("lsm: key too large")
	ErrValueTooLarge = errors.New("lsm: value too large")
	// ErrReadOnly is returned by writes after a WAL write or sync failed.
	// The data committed before the failure is safe; reopen the store to
	// write again. strata never retries a failed sync (fsyncgate).
	ErrReadOnly = errors.New("lsm: store refuses writes after an I/O failure; reopen it")
	// ErrLocked is returned by Open when another process (or another DB in
	// this process) has the store open.
	ErrLocked = errors.New("lsm: store is locked by another process")

	// ErrNamespaceDropped is returned by the methods of a Namespace that
	// has been dropped.
	ErrNamespaceDropped = errors.New("lsm: namespace dropped")

	// ErrForeignNamespace is returned by the views Txn.In and Snapshot.In
	// make of a Namespace that belongs to another DB than the transaction
	// or snapshot.
	ErrForeignNamespace = errors.New("lsm: namespace of another DB")

	// ErrNotAStore is returned by Check for a directory that holds none of
	// a store's files (no CURRENT, manifest, WAL or table).
	ErrNotAStore = errors.New("lsm: not a strata store (no CURRENT, manifest, WAL or table)")
)
