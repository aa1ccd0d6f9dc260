package lsm

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The history and the checker of TestIsolationG1c (isolation_g1c_test.go),
// in the style of Elle's list-append checker.
//
// A history holds transactions (their reads and writes of list keys, and
// whether they committed) and the observer's snapshots. A final value is a
// list of transaction ids, "3 17 42", the list its writer read followed by
// its own id; an intermediate value ends with "!n". Every value written is
// unique, so a value names its writer.
//
// The checker finds, over every ReadCommitted read (transactions' and
// snapshots'):
//   - G1a: a read of a value written by a transaction that rolled back, or
//     of a list holding the id of one;
//   - G1b: a read of a value its committed writer overwrote before its
//     commit;
//   - early read: a read that returned before its writer called Commit;
//   - garbage: a value nobody wrote to that key, or a list naming unknown
//     transactions;
//   - internal: a transaction's read of a key it wrote that does not return
//     its latest write (or a read of its own value before writing it);
//   - snapshot: two snapshots of one sequence number that differ;
//
// and then builds the dependency graph over the committed transactions
// (and node 0, the initial state, in which every key is absent):
//   - wr: the writer of a value -> a committed transaction that read it;
//   - ww (list): W -> T when T's final value of a key extends W's by T's
//     own id (W's version precedes T's);
//   - ww (snapshots): snapshots are totally ordered by sequence number, so
//     when a key holds W's value at seq s1 and T's at s2 > s1, W's version
//     precedes T's.
//
// A cycle in that graph is G1c (G0 if every edge of it is ww, maybe also
// wr), proscribed at ReadCommitted (Adya's PL-2): in a correct history every
// edge goes from an earlier to a later commit. A key that goes back to
// absent makes a cycle through the initial state. The checker reports one
// cycle per strongly connected component, each edge with its reason.
//
// The early-read check is a real-time one: the event counter is taken
// before Commit is called and after a read returns, so a read ordered
// before its writer's call of Commit saw an uncommitted write, whether or
// not the writer went on to commit.

// g1cInit is the node of the initial state (every key absent).
const g1cInit = 0

// g1cOp is one read or write of a transaction.
type g1cOp struct {
	key   string
	write bool
	value string // written, or read ("" = absent)
	at    int64  // a read: event index taken once it returned
}

// g1cTxn is one transaction of a history.
type g1cTxn struct {
	id        int64 // > 0
	committed bool
	commitAt  int64 // event index taken just before Commit was called
	ops       []g1cOp
}

// g1cObs is what one snapshot showed of the keys it read ("" = absent).
type g1cObs struct {
	seq  uint64
	at   int64 // event index taken once its reads returned
	vals map[string]string
}

type g1cHistory struct {
	txns []*g1cTxn
	obs  []g1cObs
}

// The kinds of dependency edges.
const (
	g1cWR = iota
	g1cWWList
	g1cWWSnap
	g1cNumKinds
)

var g1cKindNames = [g1cNumKinds]string{"wr", "ww(list)", "ww(snapshots)"}

// g1cEdge is the dependency from one transaction to another: its kinds and
// the reason for the first edge of each kind.
type g1cEdge struct {
	kinds uint8
	why   [g1cNumKinds]g1cWhy
}

// g1cWhy is the reason for an edge, formatted only for reports.
type g1cWhy struct {
	r      g1cRead // wr: the read; ww(snapshots): the later snapshot's read
	value  string  // the value read or (ww(list)) written
	seq    uint64  // ww(snapshots): the earlier snapshot
	before string  // ww(snapshots): the value it read
}

func (w g1cWhy) format(kind int) string {
	switch kind {
	case g1cWWList:
		return fmt.Sprintf("T%d's %s = %s extends the other's", w.r.txn, w.r.key, g1cShort(w.value))
	case g1cWWSnap:
		return fmt.Sprintf("snapshot %d read %s = %s, snapshot %d read %s", w.seq, w.r.key, g1cShort(w.before), w.r.seq, g1cShort(w.value))
	}
	return fmt.Sprintf("%s = %s", w.r, g1cShort(w.value))
}

// g1cRead names a read: by a transaction, or by the snapshot of seq.
type g1cRead struct {
	key string
	txn int64
	seq uint64
}

func (r g1cRead) String() string {
	if r.txn == 0 {
		return fmt.Sprintf("snapshot %d read %s", r.seq, r.key)
	}
	return fmt.Sprintf("T%d read %s", r.txn, r.key)
}

type g1cAnomaly struct{ kind, msg string }

// g1cResult is the checker's verdict and figures.
type g1cResult struct {
	anomalies         []g1cAnomaly
	committed, rolled int
	reads, ownReads   int              // external reads checked; reads of the reader's own writes
	snapReads         int              // of which by snapshots
	edges             [g1cNumKinds]int // distinct edges between two transactions, by kind
	lostUpdates       int              // committed appends another commit's append to the same list replaced
	sccs              int              // strongly connected components of more than one node
}

// g1cWrite is a value written to a key.
type g1cWrite struct {
	writer int64
	final  bool // the last write of the key in its transaction
}

type g1cChecker struct {
	h      *g1cHistory
	txns   map[int64]*g1cTxn
	writes map[string]map[string]g1cWrite // key -> value -> write
	graph  map[int64]map[int64]*g1cEdge
	lists  map[[2]string]bool // (key, value) of the lists whose ids were checked
	res    g1cResult
}

// checkG1c checks a history.
func checkG1c(h *g1cHistory) *g1cResult {
	c := &g1cChecker{h: h, txns: map[int64]*g1cTxn{}, writes: map[string]map[string]g1cWrite{},
		graph: map[int64]map[int64]*g1cEdge{}, lists: map[[2]string]bool{}}
	c.index()
	for _, t := range h.txns {
		c.checkTxn(t)
	}
	c.checkSnapshots()
	c.findCycles()
	return &c.res
}

func (c *g1cChecker) anomaly(kind, format string, args ...any) {
	c.res.anomalies = append(c.res.anomalies, g1cAnomaly{kind, fmt.Sprintf(format, args...)})
}

// index records every transaction and every value written, and the ww
// edges of the committed lists.
func (c *g1cChecker) index() {
	for _, t := range c.h.txns {
		if _, dup := c.txns[t.id]; dup || t.id <= g1cInit {
			c.anomaly("history", "transaction id %d is not unique and positive", t.id)
			continue
		}
		c.txns[t.id] = t
		if t.committed {
			c.res.committed++
		} else {
			c.res.rolled++
		}
	}
	for _, t := range c.h.txns {
		last := map[string]int{} // key -> index of its last write
		for i, op := range t.ops {
			if op.write {
				last[op.key] = i
			}
		}
		for i, op := range t.ops {
			if !op.write {
				continue
			}
			m := c.writes[op.key]
			if m == nil {
				m = map[string]g1cWrite{}
				c.writes[op.key] = m
			}
			if w, dup := m[op.value]; dup {
				c.anomaly("history", "T%d and T%d both wrote %s = %s", w.writer, t.id, op.key, g1cShort(op.value))
			}
			m[op.value] = g1cWrite{t.id, last[op.key] == i}
		}
	}
	c.listEdges()
}

// listEdges adds an edge from the writer of each committed list's prefix
// (the list without its last id) to its writer, and counts lost updates:
// committed lists of one key with the same prefix.
func (c *g1cChecker) listEdges() {
	for _, key := range slices.Sorted(maps.Keys(c.writes)) {
		siblings := map[int64]int{}
		for v, w := range c.writes[key] {
			if !w.final || !c.txns[w.writer].committed {
				continue
			}
			ids, ok := g1cParse(v)
			if !ok || len(ids) == 0 || ids[len(ids)-1] != w.writer {
				continue // its writer's read was checked
			}
			prev := int64(g1cInit)
			if len(ids) > 1 {
				prev = ids[len(ids)-2]
			}
			if siblings[prev]++; siblings[prev] > 1 {
				c.res.lostUpdates++
			}
			c.edge(prev, w.writer, g1cWWList, g1cWhy{r: g1cRead{key: key, txn: w.writer}, value: v})
		}
	}
}

// edge adds a dependency edge between committed transactions (or from the
// initial state); others are ignored, their anomalies already reported.
func (c *g1cChecker) edge(from, to int64, kind int, why g1cWhy) {
	if from == to || !c.node(from) || !c.node(to) {
		return
	}
	m := c.graph[from]
	if m == nil {
		m = map[int64]*g1cEdge{}
		c.graph[from] = m
	}
	e := m[to]
	if e == nil {
		e = &g1cEdge{}
		m[to] = e
	}
	if e.kinds&(1<<kind) == 0 {
		e.kinds |= 1 << kind
		e.why[kind] = why
		if from != g1cInit {
			c.res.edges[kind]++
		}
	}
}

// node reports whether id is a node of the graph: a committed transaction
// or the initial state.
func (c *g1cChecker) node(id int64) bool {
	t, ok := c.txns[id]
	return id == g1cInit || ok && t.committed
}

// checkTxn checks a transaction's reads and adds the wr edges into it.
func (c *g1cChecker) checkTxn(t *g1cTxn) {
	own := map[string]string{} // key -> latest value t wrote
	for _, op := range t.ops {
		if op.write {
			own[op.key] = op.value
			continue
		}
		r := g1cRead{key: op.key, txn: t.id}
		if v, wrote := own[op.key]; wrote {
			c.res.ownReads++
			if op.value != v {
				c.anomaly("internal", "%s = %s after writing %s", r, g1cShort(op.value), g1cShort(v))
			}
			continue
		}
		w, ok := c.checkRead(r, op.value, op.at)
		switch {
		case ok && w == t.id:
			c.anomaly("internal", "%s = %s before writing it", r, g1cShort(op.value))
		case ok:
			c.edge(w, t.id, g1cWR, g1cWhy{r: r, value: op.value})
		}
	}
}

// checkRead checks a ReadCommitted read r (not of the reader's own write)
// that returned value, and returns the value's writer.
func (c *g1cChecker) checkRead(r g1cRead, value string, at int64) (int64, bool) {
	c.res.reads++
	if value == "" {
		return g1cInit, true
	}
	w, ok := c.writes[r.key][value]
	if !ok {
		c.anomaly("garbage", "%s = %s, a value never written there", r, g1cShort(value))
		return 0, false
	}
	wt := c.txns[w.writer]
	switch {
	case !wt.committed:
		c.anomaly("G1a", "%s = %s, written by T%d, which rolled back", r, g1cShort(value), w.writer)
		return 0, false
	case !w.final:
		c.anomaly("G1b", "%s = %s, which T%d overwrote before committing", r, g1cShort(value), w.writer)
		return 0, false
	case at < wt.commitAt:
		c.anomaly("early read", "%s = %s (event %d) before T%d called Commit (event %d)", r, g1cShort(value), at, w.writer, wt.commitAt)
	}
	c.checkIDs(r, value)
	return w.writer, true
}

// checkIDs checks, once per list, that every id of a list read by r names a
// committed transaction.
func (c *g1cChecker) checkIDs(r g1cRead, value string) {
	if c.lists[[2]string{r.key, value}] {
		return
	}
	c.lists[[2]string{r.key, value}] = true
	ids, _ := g1cParse(value)
	for _, id := range ids {
		if t, ok := c.txns[id]; !ok {
			c.anomaly("garbage", "%s = %s names T%d, which never ran", r, g1cShort(value), id)
		} else if !t.committed {
			c.anomaly("G1a", "%s = %s holds T%d, which rolled back", r, g1cShort(value), id)
		}
	}
}

// checkSnapshots checks the snapshots' reads and adds the ww edges their
// order gives.
func (c *g1cChecker) checkSnapshots() {
	obs := slices.Clone(c.h.obs)
	slices.SortStableFunc(obs, func(a, b g1cObs) int { return cmp.Compare(a.seq, b.seq) })
	type seen struct {
		seq    uint64
		value  string
		writer int64
		ok     bool
	}
	last := map[string]seen{}
	for _, o := range obs {
		for _, key := range slices.Sorted(maps.Keys(o.vals)) {
			v := o.vals[key]
			c.res.snapReads++
			r := g1cRead{key: key, seq: o.seq}
			w, ok := c.checkRead(r, v, o.at)
			p, had := last[key]
			switch {
			case !had || p.value == v:
			case p.seq == o.seq:
				c.anomaly("snapshot", "two snapshots of seq %d read %s = %s and %s", o.seq, key, g1cShort(p.value), g1cShort(v))
			case p.ok && ok:
				c.edge(p.writer, w, g1cWWSnap, g1cWhy{r: r, value: v, seq: p.seq, before: p.value})
			}
			last[key] = seen{o.seq, v, w, ok}
		}
	}
}

// findCycles reports a cycle in every strongly connected component of the
// graph with more than one node.
func (c *g1cChecker) findCycles() {
	for _, scc := range g1cSCCs(c.graph) {
		if len(scc) < 2 {
			continue
		}
		c.res.sccs++
		cycle := c.cycleIn(scc)
		ww := true
		var b strings.Builder
		for i, from := range cycle {
			to := cycle[(i+1)%len(cycle)]
			e := c.graph[from][to]
			ww = ww && e.kinds&^(1<<g1cWR) != 0
			var kinds, whys []string
			for k := range g1cNumKinds {
				if e.kinds&(1<<k) != 0 {
					kinds, whys = append(kinds, g1cKindNames[k]), append(whys, e.why[k].format(k))
				}
			}
			fmt.Fprintf(&b, "\n  %s -%s-> %s: %s", g1cName(from), strings.Join(kinds, ","), g1cName(to), strings.Join(whys, "; "))
		}
		kind := "G1c"
		if ww {
			kind = "G0"
		}
		c.anomaly(kind, "cycle of %d transactions (component of %d):%s", len(cycle), len(scc), b.String())
	}
}

func g1cName(id int64) string {
	if id == g1cInit {
		return "init"
	}
	return "T" + strconv.FormatInt(id, 10)
}

// cycleIn returns a shortest cycle through scc[0] inside the component, by
// breadth-first search.
func (c *g1cChecker) cycleIn(scc []int64) []int64 {
	in := map[int64]bool{}
	for _, n := range scc {
		in[n] = true
	}
	start := scc[0]
	parent := map[int64]int64{}
	queue := []int64{start}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, m := range slices.Sorted(maps.Keys(c.graph[n])) {
			if m == start {
				cycle := []int64{n}
				for n != start {
					n = parent[n]
					cycle = append(cycle, n)
				}
				slices.Reverse(cycle)
				return cycle
			}
			if _, seen := parent[m]; in[m] && !seen {
				parent[m] = n
				queue = append(queue, m)
			}
		}
	}
	return scc // unreachable: every node of a component lies on a cycle
}

// g1cSCCs returns the strongly connected components of g (Tarjan), nodes
// visited in ascending order.
func g1cSCCs(g map[int64]map[int64]*g1cEdge) [][]int64 {
	index := map[int64]int{}
	low := map[int64]int{}
	onStack := map[int64]bool{}
	var stack []int64
	var out [][]int64
	var visit func(n int64)
	visit = func(n int64) {
		index[n], low[n] = len(index), len(index)
		stack = append(stack, n)
		onStack[n] = true
		for _, m := range slices.Sorted(maps.Keys(g[n])) {
			if _, seen := index[m]; !seen {
				visit(m)
				low[n] = min(low[n], low[m])
			} else if onStack[m] {
				low[n] = min(low[n], index[m])
			}
		}
		if low[n] == index[n] {
			var scc []int64
			for {
				m := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[m] = false
				scc = append(scc, m)
				if m == n {
					break
				}
			}
			slices.Sort(scc)
			out = append(out, scc)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(g)) {
		if _, seen := index[n]; !seen {
			visit(n)
		}
	}
	return out
}

// g1cParse decodes a final value: ids separated by spaces.
func g1cParse(v string) ([]int64, bool) {
	f := strings.Fields(v)
	ids := make([]int64, 0, len(f))
	for _, s := range f {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, true
}

// g1cAppend returns the final value of transaction id over list v.
func g1cAppend(v string, id int64) string {
	if v == "" {
		return strconv.FormatInt(id, 10)
	}
	return v + " " + strconv.FormatInt(id, 10)
}

// g1cShort abbreviates a value for messages: its last three ids.
func g1cShort(v string) string {
	if v == "" {
		return "(absent)"
	}
	n := strings.Count(v, " ") + 1
	if n <= 3 {
		return "[" + v + "]"
	}
	i := len(v)
	for range 3 {
		i = strings.LastIndexByte(v[:i], ' ')
	}
	return fmt.Sprintf("[...(%d) %s]", n-3, v[i+1:])
}

// TestIsolationG1cChecker feeds the checker crafted histories, each with
// one anomaly (or none), and checks it reports exactly that anomaly.
func TestIsolationG1cChecker(t *testing.T) {
	r := func(key, value string, at int64) g1cOp { return g1cOp{key: key, value: value, at: at} }
	w := func(key, value string) g1cOp { return g1cOp{key: key, write: true, value: value} }
	txn := func(id int64, committed bool, commitAt int64, ops ...g1cOp) *g1cTxn {
		return &g1cTxn{id: id, committed: committed, commitAt: commitAt, ops: ops}
	}
	obs := func(seq uint64, kv ...string) g1cObs {
		o := g1cObs{seq: seq, at: 1000, vals: map[string]string{}}
		for i := 0; i < len(kv); i += 2 {
			o.vals[kv[i]] = kv[i+1]
		}
		return o
	}
	cases := []struct {
		name  string
		h     g1cHistory
		want  []string
		edges [g1cNumKinds]int
	}{
		{"clean", g1cHistory{txns: []*g1cTxn{
			txn(1, true, 2, r("x", "", 1), w("x", "1!0"), r("x", "1!0", 1), w("x", "1")),
			txn(2, true, 5, r("x", "1", 3), w("x", "1 2"), r("y", "", 4), w("y", "2")),
			txn(3, true, 7, r("x", "1", 6), w("x", "1 3"), r("y", "2", 6)), // lost update of T2's x
			txn(4, false, 0, r("x", "1 3", 8), w("x", "1 3 4")),
		}, obs: []g1cObs{obs(1, "x", "", "y", ""), obs(5, "x", "1"), obs(9, "x", "1 2", "y", "2"), obs(9, "x", "1 2"), obs(12, "x", "1 3")}},
			nil, [g1cNumKinds]int{3, 2, 2}},
		{"wr cycle of two", g1cHistory{txns: []*g1cTxn{
			txn(1, true, 5, r("x", "", 1), w("x", "1"), r("y", "2", 6)),
			txn(2, true, 5, r("y", "", 1), w("y", "2"), r("x", "1", 6)),
		}}, []string{"G1c"}, [g1cNumKinds]int{2, 0, 0}},
		{"ww and wr cycle of three", g1cHistory{txns: []*g1cTxn{
			txn(1, true, 5, r("x", "", 1), w("x", "1")),
			txn(2, true, 5, r("x", "1", 6), r("y", "", 6), w("y", "2")),
			txn(3, true, 5, r("y", "2", 6), r("x", "", 6), w("x", "3")),
		}, obs: []g1cObs{obs(5, "x", "3"), obs(6, "x", "1")}}, []string{"G1c"}, [g1cNumKinds]int{2, 0, 1}},
		{"ww cycle", g1cHistory{txns: []*g1cTxn{
			txn(1, true, 5, r("x", "", 1), w("x", "1"), r("y", "", 1), w("y", "1")),
			txn(2, true, 5, r("x", "", 1), w("x", "2"), r("y", "", 1), w("y", "2")),
		}, obs: []g1cObs{obs(5, "x", "1", "y", "2"), obs(6, "x", "2", "y", "1")}}, []string{"G0"}, [g1cNumKinds]int{0, 0, 2}},
		{"list prefix against snapshots", g1cHistory{txns: []*g1cTxn{
			txn(1, true, 5, r("x", "", 1), w("x", "1")),
			txn(2, true, 5, r("x", "1", 6), w("x", "1 2")),
		}, obs: []g1cObs{obs(5, "x", "1 2"), obs(6, "x", "1")}}, []string{"G0"}, [g1cNumKinds]int{1, 1, 1}},
		{"key vanishes", g1cHistory{txns: []*g1cTxn{
			txn(1, true, 5, r("x", "", 1), w("x", "1")),
		}, obs: []g1cObs{obs(5, "x", "1"), obs(6, "x", "")}}, []string{"G0"}, [g1cNumKinds]int{0, 0, 1}},
		{"aborted read", g1cHistory{txns: []*g1cTxn{
			txn(1, false, 0, r("x", "", 1), w("x", "1")),
			txn(2, true, 5, r("x", "1", 3), w("x", "1 2")),
		}}, []string{"G1a"}, [g1cNumKinds]int{}},
		{"aborted id in a list", g1cHistory{txns: []*g1cTxn{
			txn(1, false, 0, w("x", "1")),
			txn(2, true, 5, w("x", "1 2")),
		}, obs: []g1cObs{obs(5, "x", "1 2")}}, []string{"G1a"}, [g1cNumKinds]int{}},
		{"intermediate read", g1cHistory{txns: []*g1cTxn{
			txn(1, true, 2, r("x", "", 1), w("x", "1!0"), w("x", "1")),
			txn(2, true, 5, r("x", "1!0", 3)),
		}}, []string{"G1b"}, [g1cNumKinds]int{}},
		{"intermediate in a snapshot", g1cHistory{txns: []*g1cTxn{
			txn(1, true, 2, r("x", "", 1), w("x", "1!0"), w("x", "1")),
		}, obs: []g1cObs{obs(5, "x", "1!0")}}, []string{"G1b"}, [g1cNumKinds]int{}},
		{"read before commit", g1cHistory{txns: []*g1cTxn{
			txn(1, true, 4, r("x", "", 1), w("x", "1")),
			txn(2, true, 5, r("x", "1", 3)),
		}}, []string{"early read"}, [g1cNumKinds]int{1, 0, 0}},
		{"garbage", g1cHistory{txns: []*g1cTxn{
			txn(1, true, 2, r("x", "", 1), w("x", "1")),
			txn(2, true, 5, r("x", "1 7", 3)),
		}}, []string{"garbage"}, [g1cNumKinds]int{}},
		{"own write not read", g1cHistory{txns: []*g1cTxn{
			txn(1, true, 2, r("x", "", 1), w("x", "1"), r("x", "", 1)),
		}}, []string{"internal"}, [g1cNumKinds]int{}},
		{"own write read before writing", g1cHistory{txns: []*g1cTxn{
			txn(1, true, 2, r("x", "1", 3), w("x", "1")),
		}}, []string{"internal"}, [g1cNumKinds]int{}},
		{"snapshots of one seq differ", g1cHistory{txns: []*g1cTxn{
			txn(1, true, 2, r("x", "", 1), w("x", "1")),
		}, obs: []g1cObs{obs(5, "x", ""), obs(5, "x", "1")}}, []string{"snapshot"}, [g1cNumKinds]int{}},
	}
	for v, want := range map[string]string{"": "(absent)", "1 2 3": "[1 2 3]", "1 2 3 4 5": "[...(2) 3 4 5]"} {
		if got := g1cShort(v); got != want {
			t.Errorf("g1cShort(%q) = %q, want %q", v, got, want)
		}
	}
	for _, tc := range cases {
		res := checkG1c(&tc.h)
		var got []string
		for _, a := range res.anomalies {
			got = append(got, a.kind)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: checker reported %q, want %q:\n%v", tc.name, got, tc.want, res.anomalies)
		} else if res.edges != tc.edges {
			t.Errorf("%s: edges %v, want %v", tc.name, res.edges, tc.edges)
		}
		for _, a := range res.anomalies {
			if (a.kind == "G1c" || a.kind == "G0") && !strings.Contains(a.msg, "T1 -") {
				t.Errorf("%s: the cycle report does not name T1: %s", tc.name, a.msg)
			}
		}
	}
}
