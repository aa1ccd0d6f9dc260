package lsm

import (
	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/memtable"
	"github.com/stratadb/strata/txn"
)

// overlayIter reads a snapshot of a transaction's overlay as internal keys:
// each write gets the sequence number overlaySeqBase+stamp, newer than any
// commit, and ordered among transactions by stamp.
type overlayIter struct {
	it txn.Iter
}

func (o *overlayIter) First() bool            { return o.it.First() }
func (o *overlayIter) Last() bool             { return o.it.Last() }
func (o *overlayIter) SeekGE(key []byte) bool { return o.it.SeekGE(key) }
func (o *overlayIter) SeekLT(key []byte) bool { return o.it.SeekLT(key) }
func (o *overlayIter) Next() bool             { return o.it.Next() }
func (o *overlayIter) Prev() bool             { return o.it.Prev() }
func (o *overlayIter) Value() []byte          { return o.it.Value() }

func (o *overlayIter) Key() base.InternalKey {
	item := o.it.Item()
	return base.InternalKey{UserKey: item.Key, Trailer: base.MakeTrailer(overlaySeqBase+item.Stamp, item.Kind)}
}

var (
	_ internalIterator = (*memtable.Iter)(nil)
	_ internalIterator = (*overlayIter)(nil)
)
