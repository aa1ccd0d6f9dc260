package lsm

import (
	"errors"
	"fmt"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/manifest"
	"github.com/stratadb/strata/txn"
)

// A namespace is a separate keyspace of the DB with the same API: one state
// store per namespace, or one time segment per namespace for a windowed
// store. Its keys carry its id as a prefix, so a transaction spans several
// namespaces (and the committed offsets) in one commit, and dropping a
// namespace is one manifest edit: reads stop seeing it at once, and
// compaction reclaims its space. Ids are never reused, so a namespace
// created again under a dropped one's name starts empty.
//
// The DB's own Get, Set, Delete and NewIterator use the default namespace,
// which has no name and cannot be dropped.

// MaxNamespaceNameLen is the longest namespace name, in bytes.
const MaxNamespaceNameLen = 1024

// Namespace is an open namespace. Its methods are safe for concurrent use.
// After the namespace is dropped they return ErrNamespaceDropped (a
// transaction's writes to it are then discarded at commit); after the DB is
// closed, ErrClosed.
type Namespace struct {
	db   *DB
	id   base.NamespaceID
	name string
}

var _ Reader = (*Namespace)(nil)

// Namespace opens the namespace called name, creating it (durably, before
// it returns) if it does not exist. Every call for one name returns a
// handle to the same keyspace until the namespace is dropped.
func (d *DB) Namespace(name string) (*Namespace, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	if name == "" || len(name) > MaxNamespaceNameLen {
		return nil, fmt.Errorf("lsm: namespace name of %d bytes: it must have 1 to %d", len(name), MaxNamespaceNameLen)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if id, ok := d.mu.current.NamespaceID(name); ok {
		return &Namespace{db: d, id: id, name: name}, nil
	}
	if err := d.writable(); err != nil {
		return nil, err
	}
	id := d.mu.current.NextNamespaceID()
	if id > base.MaxNamespaceID {
		return nil, errors.New("lsm: no namespace id left")
	}
	edit := &manifest.VersionEdit{
		CreatedNamespaces: []manifest.Namespace{{ID: id, Name: name}},
		NextNamespaceID:   id + 1,
	}
	if err := d.logAndApplyLocked(edit); err != nil {
		return nil, err
	}
	d.opts.Logger.Info("created a namespace", "name", name, "id", id)
	return &Namespace{db: d, id: id, name: name}, nil
}

// DropNamespace drops the namespace called name: one manifest edit, synced
// before it returns, in time independent of the namespace's size. Reads and
// writes through its handles fail with ErrNamespaceDropped from then on,
// and compaction discards its keys; an iterator opened before the drop
// keeps its point-in-time view until closed. Dropping a namespace that does
// not exist is an error.
func (d *DB) DropNamespace(name string) error {
	if err := d.writable(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.mu.current.NamespaceID(name)
	if !ok {
		return fmt.Errorf("lsm: drop namespace %q: it does not exist", name)
	}
	if err := d.logAndApplyLocked(&manifest.VersionEdit{DroppedNamespaces: []base.NamespaceID{id}}); err != nil {
		return err
	}
	d.opts.Logger.Info("dropped a namespace", "name", name, "id", id)
	return nil
}

// Namespaces returns the names of the namespaces that exist, by creation
// order.
func (d *DB) Namespaces() []string {
	if d.check() != nil {
		return nil
	}
	rs := d.loadReadState()
	defer rs.unref()
	var names []string
	for _, ns := range rs.version.Namespaces() {
		names = append(names, ns.Name)
	}
	return names
}

// Name returns the namespace's name.
func (ns *Namespace) Name() string { return ns.name }

// usable returns why the namespace cannot be used, if it cannot.
func (ns *Namespace) usable() error {
	if ns == nil {
		return ErrClosed
	}
	if err := ns.db.check(); err != nil {
		return err
	}
	if ns.db.rs.Load().version.IsDropped(ns.id) {
		return ErrNamespaceDropped
	}
	return nil
}

// usableIn returns why the namespace cannot be used by a transaction or
// snapshot of DB d, if it cannot: its own state, then whether it belongs
// to d (see foreignTo).
func (ns *Namespace) usableIn(d *DB) error {
	if err := ns.usable(); err != nil {
		return err
	}
	return ns.foreignTo(d)
}

// foreignTo returns ErrForeignNamespace if the namespace belongs to another
// DB than d (a nil namespace or d: not known, nil).
func (ns *Namespace) foreignTo(d *DB) error {
	if ns != nil && d != nil && ns.db != d {
		return ErrForeignNamespace
	}
	return nil
}

// key returns key prefixed with the namespace's id, in buf.
func (ns *Namespace) key(buf []byte, key []byte) []byte { return prefixKey(buf, ns.id, key) }

// Get returns a copy of the committed value of key, or ErrNotFound.
func (ns *Namespace) Get(key []byte) ([]byte, error) { return copyValue(ns.get(key, seqLatest)) }

// AppendValue appends the committed value of key to dst and returns the
// extended slice, or ErrNotFound.
func (ns *Namespace) AppendValue(dst, key []byte) ([]byte, error) {
	v, err := ns.get(key, seqLatest)
	return appendValue(dst, v, err)
}

func (ns *Namespace) get(key []byte, seq base.SeqNum) ([]byte, error) {
	if err := ns.usable(); err != nil {
		return nil, err
	}
	var buf [64]byte
	return ns.db.getCommitted(ns.id, ns.key(buf[:0], key), seq)
}

// Set commits key = value in the namespace as a transaction of its own.
func (ns *Namespace) Set(key, value []byte) error {
	if err := ns.usable(); err != nil {
		return err
	}
	return ns.db.applyOne(ns.id, base.KindSet, key, value)
}

// Delete commits the removal of key from the namespace as a transaction of
// its own.
func (ns *Namespace) Delete(key []byte) error {
	if err := ns.usable(); err != nil {
		return err
	}
	return ns.db.applyOne(ns.id, base.KindDelete, key, nil)
}

// NewIterator returns an iterator over the namespace's committed data as
// of now.
func (ns *Namespace) NewIterator(o *IterOptions) (*Iterator, error) {
	if err := ns.usable(); err != nil {
		return nil, err
	}
	return ns.db.newIterator(ns.id, o, nil, seqLatest), nil
}

// In returns a reader of the namespace as of the snapshot. ns must belong
// to the snapshot's DB: the reader of another DB's namespace returns
// ErrForeignNamespace.
func (s *Snapshot) In(ns *Namespace) Reader { return snapshotNamespace{s, ns} }

// snapshotNamespace reads a namespace as of a snapshot.
type snapshotNamespace struct {
	s  *Snapshot
	ns *Namespace
}

func (r snapshotNamespace) Get(key []byte) ([]byte, error) {
	if err := r.s.hold(); err != nil {
		return nil, err
	}
	defer r.s.mu.RUnlock()
	if err := r.ns.foreignTo(r.s.db); err != nil { // get checks the rest
		return nil, err
	}
	return copyValue(r.ns.get(key, r.s.seq))
}

func (r snapshotNamespace) NewIterator(o *IterOptions) (*Iterator, error) {
	if err := r.s.hold(); err != nil {
		return nil, err
	}
	defer r.s.mu.RUnlock()
	if err := r.ns.usableIn(r.s.db); err != nil {
		return nil, err
	}
	return r.s.db.newIterator(r.ns.id, o, nil, r.s.seq), nil
}

// TxnNamespace is a transaction's view of one namespace: its reads see the
// transaction's own writes to the namespace over the committed data, and
// its writes join the transaction (one commit for every namespace it
// touched). It is a small value, made by Txn.In; it is for the
// transaction's goroutine, like the Txn.
type TxnNamespace struct {
	t  *Txn
	ns *Namespace
}

var _ Reader = TxnNamespace{}

// In returns the transaction's view of namespace ns. ns must belong to the
// transaction's DB: the view of another DB's namespace returns
// ErrForeignNamespace.
func (t *Txn) In(ns *Namespace) TxnNamespace { return TxnNamespace{t, ns} }

// usable returns why the view cannot be used, if it cannot (see
// Namespace.usableIn); a finished or nil transaction reports itself when
// used.
func (tn TxnNamespace) usable() error {
	var d *DB
	if tn.t != nil {
		d = tn.t.db
	}
	return tn.ns.usableIn(d)
}

// Get returns a copy of key's value as the transaction sees it.
func (tn TxnNamespace) Get(key []byte) ([]byte, error) {
	if err := tn.usable(); err != nil {
		return nil, err
	}
	return copyValue(tn.t.getIn(tn.ns.id, key))
}

// AppendValue appends key's value as the transaction sees it to dst.
func (tn TxnNamespace) AppendValue(dst, key []byte) ([]byte, error) {
	if err := tn.usable(); err != nil {
		return dst, err
	}
	v, err := tn.t.getIn(tn.ns.id, key)
	return appendValue(dst, v, err)
}

// Set writes key = value in the namespace, in the transaction.
func (tn TxnNamespace) Set(key, value []byte) error {
	if err := tn.usable(); err != nil {
		return err
	}
	return tn.t.writeIn(tn.ns.id, base.KindSet, key, value)
}

// Delete removes key from the namespace, in the transaction.
func (tn TxnNamespace) Delete(key []byte) error {
	if err := tn.usable(); err != nil {
		return err
	}
	return tn.t.writeIn(tn.ns.id, base.KindDelete, key, nil)
}

// NewIterator returns an iterator over the namespace as the transaction
// sees it now (later writes of the transaction do not show).
func (tn TxnNamespace) NewIterator(o *IterOptions) (*Iterator, error) {
	if err := tn.t.usable(); err != nil {
		return nil, err
	}
	if err := tn.usable(); err != nil {
		return nil, err
	}
	return tn.t.db.newIterator(tn.ns.id, o, []*txn.Overlay{tn.t.ov}, seqLatest), nil
}
