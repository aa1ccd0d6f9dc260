package lsm

import (
	"bytes"
	"encoding/binary"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/manifest"
	"github.com/stratadb/strata/memtable"
	"github.com/stratadb/strata/txn"
)

// Reader reads a store at some isolation level. *DB and *Txn implement it,
// and DB.Reader returns one for each level. Readers are safe for concurrent
// use if what they read from is (a *Txn is not).
type Reader interface {
	// Get returns a copy of key's value, or ErrNotFound.
	Get(key []byte) ([]byte, error)
	// NewIterator returns a point-in-time iterator.
	NewIterator(o *IterOptions) (*Iterator, error)
}

var (
	_ Reader = (*DB)(nil)
	_ Reader = (*Txn)(nil)
)

// Reader returns a reader of the DB at the given isolation level:
// ReadCommitted sees committed data only (it is the DB itself);
// ReadUncommitted also sees the writes of open transactions and may be used
// from any goroutine while the transactions' owners keep writing. Among open
// transactions the latest write of a key wins; an open transaction's write
// takes precedence over the committed value, even one committed after it
// (the reader shows what the store will hold once that transaction
// commits).
func (d *DB) Reader(level IsolationLevel) Reader {
	if level == ReadUncommitted {
		return uncommittedReader{d}
	}
	return d
}

// NewIterator returns an iterator over the committed data as of now.
func (d *DB) NewIterator(o *IterOptions) (*Iterator, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	return d.newIterator(base.DefaultNamespace, o, nil, seqLatest), nil
}

// uncommittedReader reads committed data overlaid with the writes of every
// open transaction.
type uncommittedReader struct{ d *DB }

func (r uncommittedReader) Get(key []byte) ([]byte, error) {
	d := r.d
	if err := d.check(); err != nil {
		return nil, err
	}
	var buf [64]byte
	pkey := prefixKey(buf[:0], base.DefaultNamespace, key)
	var best []byte
	var bestKind base.Kind
	var bestStamp uint64
	found := false
	d.txns.Lock()
	for t := range d.txns.open {
		if v, kind, stamp, ok := t.ov.SharedGet(pkey); ok && (!found || stamp > bestStamp) {
			best, bestKind, bestStamp, found = v, kind, stamp, true
		}
	}
	d.txns.Unlock()
	switch {
	case !found:
		return copyValue(d.getCommitted(base.DefaultNamespace, pkey, seqLatest))
	case bestKind == base.KindDelete:
		return nil, ErrNotFound
	}
	return copyValue(best, nil)
}

func (r uncommittedReader) NewIterator(o *IterOptions) (*Iterator, error) {
	d := r.d
	if err := d.check(); err != nil {
		return nil, err
	}
	d.txns.Lock()
	ovs := make([]*txn.Overlay, 0, len(d.txns.open))
	for t := range d.txns.open {
		ovs = append(ovs, t.ov)
	}
	// Snapshots are taken while the set of open transactions is fixed, so
	// that a transaction committing meanwhile is seen either here or in the
	// committed data.
	it := d.newIterator(base.DefaultNamespace, o, ovs, seqLatest)
	d.txns.Unlock()
	return it, nil
}

// newIterator builds an iterator over namespace ns: the given overlays
// (snapshotted now) merged over the committed data at sequence number snap
// (seqLatest: the newest). The iterator holds the read state it loaded
// (memtables and tables) until it is closed.
func (d *DB) newIterator(ns base.NamespaceID, o *IterOptions, ovs []*txn.Overlay, snap base.SeqNum) *Iterator {
	it := &Iterator{db: d, ovIters: make([]overlayIter, len(ovs))}
	for i, ov := range ovs {
		it.ovIters[i].it.Init(ov.Snapshot())
	}
	it.setBounds(ns, o)
	it.rs = d.loadReadState()
	it.snap = d.readAt(snap)
	if it.rs.version.IsDropped(ns) {
		it.err = ErrNamespaceDropped
	}
	mems := it.rs.mems
	it.memIters = make([]memtable.Iter, len(mems))
	it.srcs = make([]internalIterator, 0, len(mems)+len(ovs)+4)
	for i := range it.ovIters {
		it.srcs = append(it.srcs, &it.ovIters[i])
	}
	for i, m := range mems {
		m.InitIter(&it.memIters[i])
		it.srcs = append(it.srcs, &it.memIters[i])
	}
	it.addTables()
	it.merge.init(it.srcs)
	return it
}

// addTables adds the tables of the read state within the bounds to the
// iterator's sources: each level-0 table, and one level iterator per deeper
// level.
func (it *Iterator) addTables() {
	v := it.rs.version
	it.tables.opener = it.db.tables
	for _, f := range v.Files(0) {
		if bytes.Compare(f.Largest.UserKey, it.lower) < 0 || it.upper != nil && bytes.Compare(f.Smallest.UserKey, it.upper) >= 0 {
			continue
		}
		t, err := it.tables.addTable(f)
		if err != nil {
			it.setErr(err)
			return
		}
		it.srcs = append(it.srcs, t)
	}
	for level := 1; level < manifest.NumLevels; level++ {
		if files := v.Files(level); len(files) > 0 {
			it.srcs = append(it.srcs, it.tables.addLevel(files, it.lower, it.upper))
		}
	}
}

// setBounds turns the user's bounds into prefixed ones within namespace ns.
func (it *Iterator) setBounds(ns base.NamespaceID, o *IterOptions) {
	prefix := base.AppendNamespace(nil, ns)
	it.ns = ns
	it.prefixLen = len(prefix)
	it.seekBuf = append(make([]byte, 0, 64), prefix...)
	it.lower = prefix
	it.upper = base.NamespaceUpperBound(ns)
	if o == nil {
		return
	}
	if o.LowerBound != nil {
		it.lower = append(prefix[:len(prefix):len(prefix)], o.LowerBound...)
	}
	if o.UpperBound != nil {
		it.upper = append(prefix[:len(prefix):len(prefix)], o.UpperBound...)
	}
}

// CommittedOffset returns the committed offset of name, or ErrNotFound if
// none was ever committed. Any other error (a table that cannot be read,
// ErrClosed) means the offset is unknown: never resume from scratch on one.
func (d *DB) CommittedOffset(name string) (int64, error) {
	if err := d.check(); err != nil {
		return 0, err
	}
	var buf [64]byte
	v, err := d.getCommitted(base.EngineNamespace, append(base.AppendNamespace(buf[:0], base.EngineNamespace), name...), seqLatest)
	if err != nil {
		return 0, err
	}
	return decodeOffset(name, v)
}

// CommittedOffsets returns every committed offset, as of one point in time:
// they describe exactly the data committed with them. The map is the
// caller's. On error (a table that cannot be read, ErrClosed) it returns
// no map: a partial one would look like offsets never committed.
func (d *DB) CommittedOffsets() (map[string]int64, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	offsets := make(map[string]int64)
	it := d.newIterator(base.EngineNamespace, nil, nil, seqLatest)
	for ok := it.First(); ok; ok = it.Next() {
		o, err := decodeOffset(string(it.Key()), it.Value())
		if err != nil {
			it.Close()
			return nil, err
		}
		offsets[string(it.Key())] = o
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	return offsets, nil
}

// decodeOffset decodes the stored value of offset name.
func decodeOffset(name string, v []byte) (int64, error) {
	if len(v) != 8 {
		return 0, base.CorruptionErrorf("lsm: committed offset %q holds %d bytes, not 8", name, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}
