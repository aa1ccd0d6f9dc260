package lsm

import (
	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/manifest"
)

// seqLatest asks a read for the newest committed data: the visible
// sequence number is loaded after the read state (see readAt).
const seqLatest = ^base.SeqNum(0)

// readAt returns the sequence number a read of rs at snap reads at. For
// seqLatest it loads the visible sequence number now, after the read state
// was loaded: every commit up to it lives in rs, except those of memtables
// rotated in since, which all follow every commit of rs, so the read sees a
// prefix of the commits. (Loading it before the read state could let a
// compaction installed in between drop a version the read needs.)
func (d *DB) readAt(snap base.SeqNum) base.SeqNum {
	if snap == seqLatest {
		return d.visibleSeq.Load()
	}
	return snap
}

// getCommitted returns the newest value of the prefixed key pkey, of
// namespace ns, at or below snap: from the memtables, then the level-0
// tables newest first, then one table per deeper level. Table values are
// never reused and memtable values never change, so the result may alias
// them after the read state is released.
//
// A read that meets Close returns ErrClosed, whatever it found: Close sets
// closed before it installs its final read state, which has no memtables,
// and before it closes the table cache, so a read that loaded that state
// or lost its tables sees closed once done (bug 16 in docs/RELIABILITY.md:
// it answered ErrNotFound, or an older value, for a key in the memtable).
func (d *DB) getCommitted(ns base.NamespaceID, pkey []byte, snap base.SeqNum) ([]byte, error) {
	v, err := d.lookupCommitted(ns, pkey, snap)
	if d.closed.Load() {
		return nil, ErrClosed
	}
	return v, err
}

// lookupCommitted is getCommitted on the read state installed now.
func (d *DB) lookupCommitted(ns base.NamespaceID, pkey []byte, snap base.SeqNum) ([]byte, error) {
	rs := d.loadReadState()
	defer rs.unref()
	if rs.version.IsDropped(ns) {
		return nil, ErrNamespaceDropped
	}
	seq := d.readAt(snap)
	for _, m := range rs.mems {
		if v, kind, ok := m.Get(pkey, seq); ok {
			return found(v, kind)
		}
	}
	for _, f := range rs.version.Files(0) {
		v, kind, ok, err := getFromTable(f, d.tables, pkey, seq)
		if err != nil || ok {
			return foundErr(v, kind, err)
		}
	}
	for level := 1; level < manifest.NumLevels; level++ {
		files := rs.version.Files(level)
		if len(files) == 0 {
			continue
		}
		v, kind, ok, err := getFromLevel(files, d.tables, pkey, seq)
		if err != nil || ok {
			return foundErr(v, kind, err)
		}
	}
	return nil, ErrNotFound
}

// found turns a version found into Get's result.
func found(v []byte, kind base.Kind) ([]byte, error) {
	if kind == base.KindDelete {
		return nil, ErrNotFound
	}
	return v, nil
}

// foundErr is found for a table lookup that may have failed.
func foundErr(v []byte, kind base.Kind, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	return found(v, kind)
}
