package lsm

import (
	"fmt"
	"iter"
	"strings"
)

// Metrics is a snapshot of a DB's state and counters. It holds plain
// values; the caller owns it.
type Metrics struct {
	// Commits and CommitBytes count the commits written since Open and the
	// bytes of their records.
	Commits, CommitBytes int64
	// MemTables is the number of memtables (the active one included) and
	// MemTableBytes the memory they hold.
	MemTables     int
	MemTableBytes int64
	// Rotations counts memtable rotations into new WAL files since Open.
	Rotations int64
	// WALNumber is the number of the WAL file being written.
	WALNumber uint64
	// VisibleSeq is the sequence number of the newest visible commit.
	VisibleSeq uint64
	// OpenTxns and UncommittedBytes describe the open transactions.
	OpenTxns         int
	UncommittedBytes int64
	// ReadOnly tells that a WAL failure stopped writes.
	ReadOnly bool
}

// Metrics returns a snapshot of the DB's metrics. It is safe to call
// concurrently with anything; on a closed DB it returns zero values.
func (d *DB) Metrics() Metrics {
	if d.check() != nil {
		return Metrics{}
	}
	m := Metrics{
		Commits:          d.stats.commits.Load(),
		CommitBytes:      d.stats.commitBytes.Load(),
		Rotations:        d.stats.rotations.Load(),
		VisibleSeq:       d.visibleSeq.Load(),
		UncommittedBytes: d.uncommitted.Load(),
		ReadOnly:         d.readOnly.Load() != nil,
	}
	for _, mem := range d.rs.Load().mems {
		m.MemTables++
		m.MemTableBytes += mem.Size()
	}
	d.commit.Lock()
	m.WALNumber = d.commit.logNum
	d.commit.Unlock()
	d.txns.Lock()
	m.OpenTxns = len(d.txns.open)
	d.txns.Unlock()
	return m
}

// String formats the metrics as a small table.
func (m Metrics) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "commits        %d (%d bytes)\n", m.Commits, m.CommitBytes)
	fmt.Fprintf(&b, "memtables      %d (%d bytes), %d rotations\n", m.MemTables, m.MemTableBytes, m.Rotations)
	fmt.Fprintf(&b, "wal            %06d.log\n", m.WALNumber)
	fmt.Fprintf(&b, "visible seq    %d\n", m.VisibleSeq)
	fmt.Fprintf(&b, "open txns      %d (%d uncommitted bytes)\n", m.OpenTxns, m.UncommittedBytes)
	if m.ReadOnly {
		b.WriteString("read-only      after a WAL failure; reopen to write\n")
	}
	return b.String()
}

// All returns an iterator over the view's keys and values in order, from
// the first. The slices are valid only until the next step; copy them to
// keep them. Check Error after the loop.
func (it *Iterator) All() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for ok := it.First(); ok; ok = it.Next() {
			if !yield(it.Key(), it.Value()) {
				return
			}
		}
	}
}
