// Package txn holds a transaction's writes before they commit: the batch
// representation (batch.go), which is unchanged the payload of the one WAL
// record a commit writes, and the overlay (overlay.go), that representation
// plus an ordered, copy-on-write index over it, for read-your-writes and for
// iterators that stay valid while their transaction keeps writing
// (snapshot.go). A plain Batch, with no index, serves restoration from a
// changelog.
//
// Keys are opaque bytes here (the engine prefixes them with a namespace id)
// and compare with bytes.Compare. The package knows nothing of the WAL, the
// memtable or the engine that uses it.
package txn
