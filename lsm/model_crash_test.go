package lsm

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/stratadb/strata/internal/vfs"
)

// Simulated power cuts in the model test. The model keeps the state every
// power cut must keep (model.durable: every commit acknowledged with a
// sync, or before a Flush, a Compact or a Close returned, and every
// namespace created or dropped, whose manifest edit syncs) and the commits
// since (model.history), which a cut may lose, a suffix of them. A cut
// takes a crash clone of the store's MemFS with none, some or all of the
// unsynced writes (some torn or trashed), opens it, and requires its
// state to be the durable state plus a prefix of the history: exactly the
// model when every commit synced. The run goes on with the clone and the
// model reset to that prefix.

// modelTornPct and modelTrashPct damage unsynced blocks of a crash clone,
// as in TestPowerCut.
const modelTornPct, modelTrashPct = 10, 5

// modelCommit is a commit of the model: its writes by namespace (nil is
// the default namespace; nil values are deletions) and its offsets.
type modelCommit struct {
	writes  map[*modelNS]map[string]*string
	offsets map[string]int64
}

// commit applies c to the committed state and records it; synced tells
// that c and every commit before it are durable.
func (m *model) commit(c *modelCommit, synced bool) {
	m.apply(c, false)
	m.history = append(m.history, c)
	if synced {
		m.settle()
	}
}

// settle records that every commit so far is durable.
func (m *model) settle() {
	for _, c := range m.history {
		m.apply(c, true)
	}
	m.history = nil
}

// apply applies c to the committed state or, with durable, to the durable
// state. Writes to dropped namespaces are skipped.
func (m *model) apply(c *modelCommit, durable bool) {
	for ns, w := range c.writes {
		if ns != nil && ns.dropped {
			continue
		}
		d := m.data(ns)
		if durable {
			d = m.durableData(ns)
		}
		for k, v := range w {
			if v == nil {
				delete(d, k)
			} else {
				d[k] = *v
			}
		}
	}
	offsets := m.offsets
	if durable {
		offsets = m.durable.offsets
	}
	for k, v := range c.offsets {
		offsets[k] = v
	}
}

// durableData returns the durable data of ns (nil = default).
func (m *model) durableData(ns *modelNS) map[string]string {
	if ns == nil {
		return m.durable.committed
	}
	return ns.durable
}

// modelDump is the whole content of a store: every namespace the model
// knows (nil = default) and the committed offsets.
type modelDump struct {
	data    map[*modelNS]map[string]string
	offsets map[string]int64
}

// dump reads every namespace of the model and the offsets from the DB.
func (r *modelRun) dump(what string) modelDump {
	d := modelDump{data: map[*modelNS]map[string]string{}}
	for _, ns := range append([]*modelNS{nil}, r.m.nss...) {
		it, err := r.reader(ns).NewIterator(nil)
		if err != nil {
			r.t.Fatalf("%s: NewIterator%s: %v", what, ns, err)
		}
		data := map[string]string{}
		for ok := it.First(); ok; ok = it.Next() {
			data[string(it.Key())] = string(it.Value())
		}
		if err := it.Error(); err != nil {
			r.t.Fatalf("%s: scan%s: %v", what, ns, err)
		}
		must(r.t, it.Close())
		d.data[ns] = data
	}
	var err error
	if d.offsets, err = r.db.CommittedOffsets(); err != nil {
		r.t.Fatalf("%s: CommittedOffsets: %v", what, err)
	}
	return d
}

// stateKey names a key of the model's state: a key of a namespace, or an
// offset.
type stateKey struct {
	ns     *modelNS
	offset bool
	key    string
}

func (k stateKey) String() string {
	if k.offset {
		return fmt.Sprintf("offset %q", k.key)
	}
	return fmt.Sprintf("%q%s", k.key, k.ns)
}

// prefixMatcher tracks the keys where the durable state, with commits of
// the history applied one by one, differs from a dump.
type prefixMatcher struct {
	m    *model
	got  modelDump
	diff map[stateKey]bool
}

// check records whether the durable state and the dump agree on k.
func (p *prefixMatcher) check(k stateKey) {
	want, wok, have, hok := p.values(k)
	if wok == hok && want == have {
		delete(p.diff, k)
	} else {
		p.diff[k] = true
	}
}

// values returns k in the durable state and in the dump.
func (p *prefixMatcher) values(k stateKey) (want string, wok bool, have string, hok bool) {
	if k.offset {
		w, wok := p.m.durable.offsets[k.key]
		h, hok := p.got.offsets[k.key]
		return fmt.Sprint(w), wok, fmt.Sprint(h), hok
	}
	want, wok = p.m.durableData(k.ns)[k.key]
	have, hok = p.got.data[k.ns][k.key]
	return want, wok, have, hok
}

// describe lists a few of the keys that differ.
func (p *prefixMatcher) describe() string {
	keys := make([]string, 0, len(p.diff))
	byName := map[string]stateKey{}
	for k := range p.diff {
		keys = append(keys, k.String())
		byName[k.String()] = k
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, name := range keys {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(keys)-5)
			break
		}
		want, wok, have, hok := p.values(byName[name])
		fmt.Fprintf(&b, "; %s: store %s, model %s", name, modelValue(have, hok), modelValue(want, wok))
	}
	return b.String()
}

func modelValue(v string, ok bool) string {
	if !ok {
		return "missing"
	}
	return fmt.Sprintf("%.20q (%d bytes)", v, len(v))
}

// recoverTo finds the shortest prefix of the history that, applied to the
// durable state, gives the dump got; it makes that state the committed and
// durable one and returns how many commits the cut lost.
func (m *model) recoverTo(got modelDump) (lost int, err error) {
	p := &prefixMatcher{m: m, got: got, diff: map[stateKey]bool{}}
	for _, ns := range append([]*modelNS{nil}, m.nss...) {
		for k := range m.durableData(ns) {
			p.check(stateKey{ns: ns, key: k})
		}
		for k := range got.data[ns] {
			p.check(stateKey{ns: ns, key: k})
		}
	}
	for k := range m.durable.offsets {
		p.check(stateKey{offset: true, key: k})
	}
	for k := range got.offsets {
		p.check(stateKey{offset: true, key: k})
	}
	first := len(p.diff)
	n := 0
	for ; len(p.diff) > 0 && n < len(m.history); n++ {
		c := m.history[n]
		m.apply(c, true)
		for ns, w := range c.writes {
			if ns != nil && ns.dropped {
				continue
			}
			for k := range w {
				p.check(stateKey{ns: ns, key: k})
			}
		}
		for k := range c.offsets {
			p.check(stateKey{offset: true, key: k})
		}
	}
	if len(p.diff) > 0 {
		return 0, fmt.Errorf("the store matches no prefix of the %d commits at risk (%d keys differ with none of them, %d with all)%s",
			len(m.history), first, len(p.diff), p.describe())
	}
	lost = len(m.history) - n
	m.history = nil
	m.committed, m.offsets = maps.Clone(m.durable.committed), maps.Clone(m.durable.offsets)
	for _, ns := range m.nss {
		ns.data = maps.Clone(ns.durable)
	}
	return lost, nil
}

// crash simulates a power cut: it takes a crash clone of the store's
// filesystem keeping none, half or all of the unsynced changes, closes the
// DB, opens the clone and checks it against the model (see recoverTo).
func (r *modelRun) crash(step int) {
	pct := []int{0, 50, 100}[r.rng.IntN(3)]
	clone := r.mem.CrashClone(vfs.CrashCloneConfig{UnsyncedPct: pct, TornPct: modelTornPct, TrashPct: modelTrashPct,
		Rand: rand.New(rand.NewPCG(r.rng.Uint64(), 0))})
	what := fmt.Sprintf("step %d power cut (unsynced%%=%d, %d commits at risk)", step, pct, len(r.m.history))
	r.release()
	r.collect()
	if err := r.db.Close(); err != nil {
		r.t.Fatalf("%s: closing the DB cut off: %v", what, err)
	}
	r.mem, r.opts.FS = clone, clone
	d, err := Open(r.dir, r.opts)
	if err != nil {
		r.t.Fatalf("%s: Open: %v", what, err)
	}
	r.db = d
	r.attach(what)
	lost, err := r.m.recoverTo(r.dump(what))
	if err != nil {
		r.t.Fatalf("%s: %v", what, err)
	}
	r.totals.crashes++
	r.totals.lost += int64(lost)
	r.checkAll(what)
}
