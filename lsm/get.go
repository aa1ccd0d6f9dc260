package lsm

import (
	"errors"

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
// A read that meets Close returns ErrClosed (bug 16 in docs/RELIABILITY.md:
// it answered ErrNotFound, or an older value, for a key in the memtable).
// Close installs a final read state without memtables, which no open DB
// has, and only then closes the table cache: a read that loaded that state
// stops at once, and a read of an earlier state either finds its answer
// or meets a closed table, an error that reads as ErrClosed.
func (d *DB) getCommitted(ns base.NamespaceID, pkey []byte, snap base.SeqNum) ([]byte, error) {
	rs := d.loadReadState()
	defer rs.unref()
	if rs.mems == nil {
		return nil, ErrClosed
	}
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
			return d.foundErr(v, kind, err)
		}
	}
	for level := 1; level < manifest.NumLevels; level++ {
		files := rs.version.Files(level)
		if len(files) == 0 {
			continue
		}
		v, kind, ok, err := getFromLevel(files, d.tables, pkey, seq)
		if err != nil || ok {
			return d.foundErr(v, kind, err)
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

// foundErr is found for a table lookup that may have failed (see
// readErr).
func (d *DB) foundErr(v []byte, kind base.Kind, err error) ([]byte, error) {
	if err != nil {
		return nil, d.readErr(err)
	}
	return found(v, kind)
}

// readErr returns the error a read reports for err, met reading a table:
// once the DB is closed, an error other than corruption is ErrClosed, since
// the table cache closes with the DB and a table it will not open reads as
// that.
func (d *DB) readErr(err error) error {
	if err != nil && !errors.Is(err, ErrCorruption) && d.closed.Load() {
		return ErrClosed
	}
	return err
}
