package lsm

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// The namespace operations of the model test: creating a namespace (or
// opening a live one again), dropping one, writing and reading through a
// dropped namespace's handles, and the choice of the namespace other
// operations use. Transactions write to several namespaces, the default
// one and offsets in one commit (see txnStep); reads go through the
// namespace, a transaction's view of it and a snapshot's view of it.

// modelNamespaceNames is how many names namespaces take ("n0", "n1", ...):
// few, so that names are dropped and created again.
const modelNamespaceNames = 4

// modelNS is a namespace of the model. The default namespace is the nil
// *modelNS. A namespace created again under a dropped one's name is a new
// modelNS.
type modelNS struct {
	name string
	seq  int        // creation number in the run, for messages
	h    *Namespace // a handle on the open DB
	// data is the committed data and durable the data every power cut
	// must keep (see model.durable); both are nil once dropped.
	data, durable map[string]string
	dropped       bool
}

// String returns the namespace for messages: empty for the default one.
func (ns *modelNS) String() string {
	if ns == nil {
		return ""
	}
	return fmt.Sprintf(" in namespace %s#%d", ns.name, ns.seq)
}

// snapNS is a namespace as a snapshot must show it.
type snapNS struct {
	ns   *modelNS
	data map[string]string
}

// lookupNS returns the live namespace called name, or nil.
func (m *model) lookupNS(name string) *modelNS {
	for _, ns := range m.nss {
		if ns.name == name {
			return ns
		}
	}
	return nil
}

// createNS adds an empty namespace (creation is durable at once).
func (m *model) createNS(name string, h *Namespace, seq int) *modelNS {
	ns := &modelNS{name: name, seq: seq, h: h, data: map[string]string{}, durable: map[string]string{}}
	m.nss = append(m.nss, ns)
	return ns
}

// dropNS forgets ns and its data in every state; its writes, in open
// transactions and in the history, are skipped from now on.
func (m *model) dropNS(ns *modelNS) {
	ns.dropped, ns.data, ns.durable = true, nil, nil
	m.nss = slices.DeleteFunc(m.nss, func(x *modelNS) bool { return x == ns })
}

// pickNS returns the default namespace (nil) or, one time in three, a
// live namespace.
func (r *modelRun) pickNS() *modelNS {
	if len(r.m.nss) == 0 || r.rng.IntN(3) > 0 {
		return nil
	}
	return r.m.nss[r.rng.IntN(len(r.m.nss))]
}

// reader returns the committed data of ns (nil = default) on the DB.
func (r *modelRun) reader(ns *modelNS) Reader {
	if ns == nil {
		return r.db
	}
	return ns.h
}

// txnReader returns mt's view of ns (nil = default).
func (r *modelRun) txnReader(mt *modelTxn, ns *modelNS) Reader {
	if ns == nil {
		return mt.t
	}
	return mt.t.In(ns.h)
}

// txnWriter returns what writes to ns (nil = default) in mt.
func (r *modelRun) txnWriter(mt *modelTxn, ns *modelNS) modelWriter {
	if ns == nil {
		return mt.t
	}
	return mt.t.In(ns.h)
}

// nsStep runs a namespace operation.
func (r *modelRun) nsStep(step int) {
	switch n := r.rng.IntN(8); {
	case n < 3:
		r.createNS(step)
	case n < 4:
		r.dropNS(step)
	case n < 5 && len(r.dropped) > 0:
		r.checkDropped(fmt.Sprintf("step %d", step), r.dropped[r.rng.IntN(len(r.dropped))])
	case n < 6:
		r.checkNamespaces(fmt.Sprintf("step %d", step))
	default:
		r.spanningCommit(step)
	}
}

// spanningCommit commits a transaction of its own that writes a key or
// two in the default namespace and in every live namespace, and an
// offset: one WAL record for all of them.
func (r *modelRun) spanningCommit(step int) {
	r.begin()
	mt := r.m.open[len(r.m.open)-1]
	for _, ns := range append([]*modelNS{nil}, r.m.nss...) {
		for range 1 + r.rng.IntN(2) {
			r.txnWrite(mt, ns, r.key())
		}
	}
	name := fmt.Sprint("p", r.rng.IntN(4))
	mt.offsets[name] = r.rng.Int64N(1 << 40)
	must(r.t, mt.t.SetOffset(name, mt.offsets[name]))
	r.commit(step, mt)
}

// createNS opens a namespace: a live one (reads through the new handle
// must show its data) or a new one, which must be empty even if a dropped
// namespace had its name.
func (r *modelRun) createNS(step int) {
	name := fmt.Sprint("n", r.rng.IntN(modelNamespaceNames))
	what := fmt.Sprintf("step %d Namespace(%q)", step, name)
	r.trace("%s", what)
	h, err := r.db.Namespace(name)
	if err != nil {
		r.t.Fatalf("%s: %v", what, err)
	}
	if h.Name() != name {
		r.t.Fatalf("%s: the handle is named %q", what, h.Name())
	}
	if ns := r.m.lookupNS(name); ns != nil {
		r.checkGet(what+" get through a second handle", h, r.key(), ns.data)
		ns.h = h
		return
	}
	r.totals.created++
	r.m.createNS(name, h, int(r.totals.created))
	it, err := h.NewIterator(nil)
	if err != nil {
		r.t.Fatalf("%s: NewIterator: %v", what, err)
	}
	if it.First() {
		r.t.Fatalf("%s: the new namespace holds %q", what, it.Key())
	}
	must(r.t, it.Error())
	must(r.t, it.Close())
	r.checkNamespaces(what)
}

// dropNS drops a live namespace, or tries to drop one that does not exist
// (which must fail).
func (r *modelRun) dropNS(step int) {
	if len(r.m.nss) == 0 || r.rng.IntN(6) == 0 {
		name := fmt.Sprint("n", r.rng.IntN(modelNamespaceNames))
		if r.m.lookupNS(name) == nil {
			if err := r.db.DropNamespace(name); err == nil {
				r.t.Fatalf("step %d: DropNamespace(%q) of no namespace succeeded", step, name)
			}
		}
		return
	}
	ns := r.m.nss[r.rng.IntN(len(r.m.nss))]
	what := fmt.Sprintf("step %d DropNamespace(%q)", step, ns.name)
	r.trace("%s", what)
	if err := r.db.DropNamespace(ns.name); err != nil {
		r.t.Fatalf("%s: %v", what, err)
	}
	r.m.dropNS(ns)
	r.totals.dropped++
	r.dropped = append(r.dropped, ns.h)
	if len(r.dropped) > 4 {
		r.dropped = r.dropped[1:]
	}
	r.checkDropped(what, ns.h)
	r.checkNamespaces(what)
}

// checkDropped checks that every use of the dropped namespace h fails with
// ErrNamespaceDropped: reads and writes through the handle, an open
// transaction's view and a snapshot's view.
func (r *modelRun) checkDropped(what string, h *Namespace) {
	r.t.Helper()
	k := []byte(r.key())
	want := func(op string, err error) {
		r.t.Helper()
		if !errors.Is(err, ErrNamespaceDropped) {
			r.t.Fatalf("%s: %s of dropped namespace %q: %v, want ErrNamespaceDropped", what, op, h.Name(), err)
		}
	}
	_, err := h.Get(k)
	want("Get", err)
	want("NewIterator", iterErr(h))
	want("Set", h.Set(k, []byte("v")))
	want("Delete", h.Delete(k))
	if len(r.m.open) > 0 {
		tn := r.m.open[r.rng.IntN(len(r.m.open))].t.In(h)
		_, err := tn.Get(k)
		want("txn Get", err)
		want("txn NewIterator", iterErr(tn))
		want("txn Set", tn.Set(k, []byte("v")))
	}
	if len(r.snaps) > 0 {
		sn := r.snaps[r.rng.IntN(len(r.snaps))].s.In(h)
		_, err := sn.Get(k)
		want("snapshot Get", err)
		want("snapshot NewIterator", iterErr(sn))
	}
}

// iterErr returns the error of rd.NewIterator, closing the iterator if
// there is one.
func iterErr(rd Reader) error {
	it, err := rd.NewIterator(nil)
	if it != nil {
		it.Close()
	}
	return err
}

// txnWriteDropped writes in mt to a dropped namespace, which must fail
// without harming the transaction, or when none is dropped writes to a
// live one.
func (r *modelRun) txnWriteDropped(step int, mt *modelTxn) {
	if len(r.dropped) == 0 {
		r.txnWrite(mt, r.pickNS(), r.key())
		return
	}
	h := r.dropped[r.rng.IntN(len(r.dropped))]
	if err := mt.t.In(h).Set([]byte(r.key()), []byte("v")); !errors.Is(err, ErrNamespaceDropped) {
		r.t.Fatalf("step %d: txn Set in dropped namespace %q: %v, want ErrNamespaceDropped", step, h.Name(), err)
	}
}

// checkNamespaces compares the DB's namespaces with the model's.
func (r *modelRun) checkNamespaces(what string) {
	r.t.Helper()
	var want []string
	for _, ns := range r.m.nss {
		want = append(want, ns.name)
	}
	if got := r.db.Namespaces(); !slices.Equal(got, want) {
		r.t.Fatalf("%s: namespaces %q, want %q", what, got, want)
	}
}

// attach checks the namespaces of a DB just opened and gets handles to
// them (the old handles belong to the closed DB).
func (r *modelRun) attach(what string) {
	r.t.Helper()
	r.checkNamespaces(what)
	for _, ns := range r.m.nss {
		h, err := r.db.Namespace(ns.name)
		if err != nil {
			r.t.Fatalf("%s: Namespace(%q): %v", what, ns.name, err)
		}
		ns.h = h
	}
	r.dropped = nil
}

// noteSnapshotNS records the namespaces snapshot s must show: every live
// one, with its data now.
func (r *modelRun) noteSnapshotNS(s *Snapshot) {
	if r.snapNS == nil {
		r.snapNS = map[*Snapshot][]snapNS{}
	}
	var list []snapNS
	for _, ns := range r.m.nss {
		list = append(list, snapNS{ns, maps.Clone(ns.data)})
	}
	r.snapNS[s] = list
}

// pickSnapNS returns the default namespace of ms with its data or, half
// the time, one of the namespaces ms must show (maybe dropped since).
func (r *modelRun) pickSnapNS(ms modelSnap) (*modelNS, map[string]string) {
	list := r.snapNS[ms.s]
	if len(list) == 0 || r.rng.IntN(2) == 0 {
		return nil, ms.data
	}
	e := list[r.rng.IntN(len(list))]
	return e.ns, e.data
}

// snapReader returns ms's view of ns (nil = default).
func snapReader(ms modelSnap, ns *modelNS) Reader {
	if ns == nil {
		return ms.s
	}
	return ms.s.In(ns.h)
}
