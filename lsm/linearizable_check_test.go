package lsm

// The linearizability checker of TestLinearizable (see the comment at the
// top of linearizable_test.go for the rules it applies) and its own tests.

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

type linAnomaly struct{ kind, msg string }

// linResult is what the checker found, with the figures of the history.
type linResult struct {
	anomalies                         []linAnomaly
	sets, deletes, reads, absentReads int
	// pairs counts the (write, read) pairs of one key whose intervals
	// overlap, keyPairs per key; contended the reads overlapping a write.
	pairs, contended  int
	keyPairs          [linKeys]int
	forward, backward int   // zones of the final mapping
	forced, searched  int   // absent reads mapped in steps 2 and 3
	choices           int   // tried by step 3, at most linSearchBudget per key
	undecided         []int // keys whose step 3 ran out of budget
}

// linCluster is a write (nil: the initial state) and the reads mapped to it.
type linCluster struct {
	w     *linOp
	f, s  int64 // earliest response and latest invocation in the cluster
	reads int
}

// empty reports whether the cluster is the initial state with no reads.
func (c *linCluster) empty() bool { return c.w == nil && c.reads == 0 }

// inv and res are the write's times (0 for the initial state).
func (c *linCluster) inv() int64 {
	if c.w == nil {
		return 0
	}
	return c.w.inv
}

func (c *linCluster) res() int64 {
	if c.w == nil {
		return 0
	}
	return c.w.res
}

func (c *linCluster) String() string {
	w := "the initial state"
	if c.w != nil {
		w = c.w.String()
	}
	if c.f < c.s {
		return fmt.Sprintf("%s and %d reads (visible throughout [%d,%d])", w, c.reads, c.f, c.s)
	}
	return fmt.Sprintf("%s and %d reads (within [%d,%d])", w, c.reads, c.s, c.f)
}

// linConflict reports whether zones (f1, s1) and (f2, s2) break (b) or (c).
func linConflict(f1, s1, f2, s2 int64) bool {
	switch fw1, fw2 := f1 < s1, f2 < s2; {
	case fw1 && fw2:
		return max(f1, f2) < min(s1, s2)
	case fw1:
		return f1 < s2 && f2 < s1
	case fw2:
		return f2 < s1 && f1 < s2
	}
	return false
}

// checkLinearizable checks every key's history.
func checkLinearizable(h *linHistory) *linResult {
	res := &linResult{}
	written := map[string]*linOp{}
	var byKey [linKeys][]*linOp
	for i := range h.ops {
		op := &h.ops[i]
		if op.key < 0 || op.key >= linKeys || op.inv <= 0 || op.res <= op.inv {
			res.anomaly("history", "bad operation %v on key %d", op, op.key)
			continue
		}
		byKey[op.key] = append(byKey[op.key], op)
		if op.kind == linSet {
			if written[op.value] != nil {
				res.anomaly("history", "value written twice: %v", op)
			}
			written[op.value] = op
		}
	}
	for k, ops := range byKey {
		c := &linKeyCheck{res: res, key: k, written: written, never: h.never}
		c.run(ops)
	}
	return res
}

func (res *linResult) anomaly(kind, format string, args ...any) {
	res.anomalies = append(res.anomalies, linAnomaly{kind, fmt.Sprintf(format, args...)})
}

// linKeyCheck checks one key's history.
type linKeyCheck struct {
	res      *linResult
	key      int
	written  map[string]*linOp
	never    map[string]bool
	clusters []*linCluster // [0] is the initial state
	// dels are the deletes' clusters and the initial state's, by response.
	dels []*linCluster
	// setRes holds the sets' responses in order, lastSet[i] the latest
	// invoked of the sets of the first i+1.
	setRes  []int64
	lastSet []*linOp
}

func (c *linKeyCheck) run(ops []*linOp) {
	init := &linCluster{}
	c.clusters, c.dels = []*linCluster{init}, []*linCluster{init}
	bySet := map[*linOp]*linCluster{}
	var absent []*linOp
	for _, op := range ops {
		if op.kind == linRead {
			continue
		}
		cl := &linCluster{w: op, f: op.res, s: op.inv}
		c.clusters = append(c.clusters, cl)
		if op.kind == linDel {
			c.dels = append(c.dels, cl)
			c.res.deletes++
		} else {
			bySet[op] = cl
			c.res.sets++
		}
	}
	for _, op := range ops {
		if op.kind != linRead {
			continue
		}
		c.res.reads++
		if op.value == "" {
			c.res.absentReads++
			absent = append(absent, op)
			continue
		}
		w := c.written[op.value]
		switch {
		case c.never[op.value]:
			c.anomaly("aborted read", "%v: a value rolled back or overwritten in its transaction", op)
		case w == nil:
			c.anomaly("garbage", "%v: a value never written", op)
		case w.key != c.key:
			c.anomaly("garbage", "%v: a value written to key %d", op, w.key)
		case op.res < w.inv:
			c.anomaly("future read", "%v returned before the write began: %v", op, w)
		default:
			c.add(bySet[w], op)
		}
	}
	c.counts(ops)
	if c.zonesOK() { // else the absent reads' mapping would rest on a broken history
		c.mapAbsent(absent)
	}
	c.countZones()
}

func (c *linKeyCheck) anomaly(kind, format string, args ...any) {
	c.res.anomaly(kind, "key %d: "+format, append([]any{c.key}, args...)...)
}

// add maps read op to cluster cl.
func (c *linKeyCheck) add(cl *linCluster, op *linOp) {
	cl.f, cl.s = min(cl.f, op.res), max(cl.s, op.inv)
	cl.reads++
}

// counts adds the key's overlapping (write, read) pairs to the figures.
func (c *linKeyCheck) counts(ops []*linOp) {
	var invs, ress []int64
	for _, op := range ops {
		if op.kind != linRead {
			invs, ress = append(invs, op.inv), append(ress, op.res)
		}
	}
	slices.Sort(invs)
	slices.Sort(ress)
	for _, op := range ops {
		if op.kind == linRead {
			i, _ := slices.BinarySearch(invs, op.res) // writes begun before it returned
			j, _ := slices.BinarySearch(ress, op.inv) // writes done before it began
			c.res.pairs += i - j
			c.res.keyPairs[c.key] += i - j
			if i > j {
				c.res.contended++
			}
		}
	}
	// For step 2: the sets by response (see setBefore) and the deletes.
	sets := slices.DeleteFunc(slices.Clone(ops), func(op *linOp) bool { return op.kind != linSet })
	slices.SortFunc(sets, func(a, b *linOp) int { return cmp.Compare(a.res, b.res) })
	for _, op := range sets {
		last := op
		if n := len(c.lastSet); n > 0 && c.lastSet[n-1].inv > op.inv {
			last = c.lastSet[n-1]
		}
		c.setRes, c.lastSet = append(c.setRes, op.res), append(c.lastSet, last)
	}
	slices.SortFunc(c.dels, func(a, b *linCluster) int { return cmp.Compare(a.res(), b.res()) })
}

// zonesOK checks (b) and (c) over every cluster and reports what breaks
// them.
func (c *linKeyCheck) zonesOK() bool {
	var fw, bw []*linCluster
	for _, cl := range c.clusters {
		switch {
		case cl.empty():
		case cl.f < cl.s:
			fw = append(fw, cl)
		default:
			bw = append(bw, cl)
		}
	}
	slices.SortFunc(fw, func(a, b *linCluster) int { return cmp.Compare(a.f, b.f) })
	ok := true
	for i := 1; i < len(fw); i++ {
		if fw[i].f < fw[i-1].s {
			c.anomaly("overlap", "two values must each stay visible over overlapping spans: %v; %v", fw[i-1], fw[i])
			ok = false
		}
	}
	for _, b := range bw {
		// The only forward zone that may hold b: the last one starting before it.
		i := sort.Search(len(fw), func(i int) bool { return fw[i].f > b.s }) - 1
		if i >= 0 && linConflict(fw[i].f, fw[i].s, b.f, b.s) {
			c.anomaly("stale read", "%v lies where %v must stay visible", b, fw[i])
			ok = false
		}
	}
	return ok
}

// fits reports whether cluster cl may take zone (f, s) given the others.
func (c *linKeyCheck) fits(cl *linCluster, f, s int64) bool {
	for _, o := range c.clusters {
		if o != cl && !o.empty() && linConflict(f, s, o.f, o.s) {
			return false
		}
	}
	return true
}

// feasible returns the deletes (or the initial state) that absent read r
// may be mapped to, given the mapping so far.
func (c *linKeyCheck) feasible(r *linOp) []*linCluster {
	// A delete that responded before the latest invocation of a set that
	// responded before r began cannot be: that set lies between them.
	// (The initial state responded at 0: it is a candidate only if no set
	// did before r.)
	floor := int64(-1)
	if w := c.setBefore(r); w != nil {
		floor = w.inv
	}
	var out []*linCluster
	i := sort.Search(len(c.dels), func(i int) bool { return c.dels[i].res() > floor })
	for _, d := range c.dels[i:] {
		if d.inv() < r.res && c.fits(d, min(d.f, r.res), max(d.s, r.inv)) {
			out = append(out, d)
		}
	}
	return out
}

// setBefore returns the latest invoked of the sets that responded before
// read r began, or nil.
func (c *linKeyCheck) setBefore(r *linOp) *linOp {
	if i := sort.Search(len(c.setRes), func(i int) bool { return c.setRes[i] > r.inv }); i > 0 {
		return c.lastSet[i-1]
	}
	return nil
}

// mapAbsent runs steps 2 and 3 over the key's absent reads.
func (c *linKeyCheck) mapAbsent(absent []*linOp) {
	absent, _ = c.propagate(absent, false)
	if len(absent) > 0 {
		budget := linSearchBudget
		defer func() { c.res.choices += linSearchBudget - max(budget, 0) }()
		switch {
		case c.search(absent, &budget):
			c.res.searched += len(absent)
		case budget < 0:
			c.res.undecided = append(c.res.undecided, c.key)
			return
		default:
			c.anomaly("stale absent", "no mapping of the absent reads fits (b) and (c); the first of them: %v", absent[0])
			return
		}
	}
	if !c.zonesOK() {
		c.anomaly("internal", "the witness mapping breaks (b) or (c)")
	}
}

// linSearchBudget bounds the choices step 3 tries per key.
const linSearchBudget = 100000

// search maps the absent reads left (each with several feasible deletes)
// depth first: it maps the first to each feasible delete in turn, least
// zone growth first, runs step 2, and goes on with the reads still left.
// It reports whether it found a witness; if not, it leaves the mapping as
// it found it and a negative budget means it gave up.
func (c *linKeyCheck) search(absent []*linOp, budget *int) bool {
	r := absent[0]
	cands := c.feasible(r)
	slices.SortStableFunc(cands, func(a, b *linCluster) int {
		return cmp.Or(cmp.Compare(linGrowth(a, r), linGrowth(b, r)), -cmp.Compare(a.inv(), b.inv()))
	})
	for _, d := range cands {
		if *budget--; *budget < 0 {
			return false
		}
		saved := c.save()
		c.add(d, r)
		left, stuck := c.propagate(slices.Clone(absent[1:]), true)
		if !stuck && (len(left) == 0 || c.search(left, budget)) {
			return true
		}
		c.restore(saved)
		if *budget < 0 {
			return false
		}
	}
	return false
}

// save returns the clusters' zones, for restore.
func (c *linKeyCheck) save() []linCluster {
	saved := make([]linCluster, len(c.clusters))
	for i, cl := range c.clusters {
		saved[i] = *cl
	}
	return saved
}

func (c *linKeyCheck) restore(saved []linCluster) {
	for i, cl := range c.clusters {
		*cl = saved[i]
	}
}

// linGrowth is how long d's zone would have to stay visible with r mapped
// to it.
func linGrowth(d *linCluster, r *linOp) int64 {
	f, s := min(d.f, r.res), max(d.s, r.inv)
	return max(s-f, 0)
}

// propagate runs step 2 until nothing changes and returns the reads with
// several feasible deletes, in invocation order. After a guess of step 3
// (guessed), a read with none means the guess was wrong (stuck), not an
// anomaly.
func (c *linKeyCheck) propagate(absent []*linOp, guessed bool) (left []*linOp, stuck bool) {
	for changed := true; changed; {
		changed = false
		left = absent[:0]
		for _, r := range absent {
			switch cands := c.feasible(r); len(cands) {
			case 0:
				if guessed {
					return nil, true
				}
				last := "none"
				if w := c.setBefore(r); w != nil {
					last = w.String()
				}
				c.anomaly("stale absent", "%v: no delete fits between it and the sets before it (the last of them: %s)", r, last)
			case 1:
				c.add(cands[0], r)
				if !guessed {
					c.res.forced++
				}
				changed = true
			default:
				left = append(left, r)
			}
		}
		absent = left
	}
	slices.SortFunc(left, func(a, b *linOp) int { return cmp.Compare(a.inv, b.inv) })
	return left, false
}

// countZones adds the key's zones to the figures.
func (c *linKeyCheck) countZones() {
	for _, cl := range c.clusters {
		switch {
		case cl.empty():
		case cl.f < cl.s:
			c.res.forward++
		default:
			c.res.backward++
		}
	}
}

// linReport lists the anomalies: their count by kind, then the first
// linMaxReports of each kind in full.
func linReport(as []linAnomaly) string {
	byKind := map[string][]linAnomaly{}
	for _, a := range as {
		byKind[a.kind] = append(byKind[a.kind], a)
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		fmt.Fprintf(&b, "%s: %d\n", k, len(byKind[k]))
		for i, a := range byKind[k] {
			if i == linMaxReports {
				fmt.Fprintf(&b, "  ... %d more\n", len(byKind[k])-i)
				break
			}
			fmt.Fprintf(&b, "  %s\n", a.msg)
		}
	}
	return b.String()
}

// TestLinearizableChecker feeds the checker crafted histories, each with
// one kind of anomaly (or none), and checks it reports exactly that kind,
// and, for the good ones, proves them linearizable.
func TestLinearizableChecker(t *testing.T) {
	set := func(k int, v string, inv, res int64) linOp { return linOp{k, linSet, v, inv, res} }
	del := func(k int, inv, res int64) linOp { return linOp{k, linDel, "", inv, res} }
	get := func(k int, v string, inv, res int64) linOp { return linOp{k, linRead, v, inv, res} }
	cases := []struct {
		name  string
		ops   []linOp
		never []string
		want  string // the kind of every anomaly; "" none
		pairs int    // overlapping (write, read) pairs, of a good one
	}{
		{"valid, concurrent", []linOp{
			// b is read before its write returns, then a, written over it.
			set(0, "a", 1, 4), set(0, "b", 2, 6), get(0, "b", 3, 5), get(0, "a", 7, 8),
			// A delete concurrent with a set, linearized after it.
			set(0, "c", 9, 12), del(0, 10, 13), get(0, "", 11, 14), get(0, "", 15, 16),
			// A transaction writing keys 0 and 1, read concurrently.
			set(0, "t", 17, 20), set(1, "t1", 17, 20), get(1, "", 18, 19), get(1, "t1", 21, 22), get(0, "t", 21, 23),
			// An absent read mapped to either of two deletes.
			set(2, "v", 1, 2), del(2, 3, 6), del(2, 4, 7), get(2, "", 5, 8), get(2, "", 9, 10),
		}, nil, "", 7},
		{"initial state read concurrently with a set", []linOp{
			get(0, "", 1, 3), set(0, "a", 2, 4), get(0, "a", 5, 8), del(0, 6, 9), get(0, "", 7, 10),
		}, nil, "", 3},
		{"value read while a later delete was in flight, then absent", []linOp{
			get(0, "", 1, 3), set(0, "a", 2, 4), get(0, "", 5, 7), del(0, 6, 9), get(0, "a", 8, 10),
		}, nil, "stale absent", 0},
		{"an absent read whose first choice of delete must be undone", []linOp{
			// The search maps [1,3] to the delete [2,13] first (its zone
			// grows least), which leaves [14,16] with none; it must go to
			// the initial state (choice 2), and [8,9] to a delete (3).
			get(0, "", 1, 3), del(0, 2, 13), set(0, "v1", 4, 5), set(0, "v4", 6, 10), del(0, 7, 15),
			get(0, "", 8, 9), get(0, "v4", 11, 12), get(0, "", 14, 16),
		}, nil, "", 7},
		{"stale read after a later write completed", []linOp{
			set(0, "a", 1, 2), set(0, "b", 3, 4), get(0, "a", 5, 6),
		}, nil, "stale read", 0},
		{"stale read after a transaction completed", []linOp{
			set(0, "a", 1, 2), set(1, "a1", 1, 2), set(0, "b", 3, 4), get(1, "a1", 5, 6), get(0, "a", 7, 8),
		}, nil, "stale read", 0},
		{"value read after its delete completed", []linOp{
			set(0, "a", 1, 2), del(0, 3, 4), get(0, "a", 5, 6),
		}, nil, "stale read", 0},
		{"read returned before its write began", []linOp{
			get(0, "a", 1, 2), set(0, "a", 3, 4),
		}, nil, "future read", 0},
		{"two readers see two writes in opposite orders", []linOp{
			set(0, "a", 1, 10), set(0, "b", 2, 11),
			get(0, "a", 12, 14), get(0, "b", 13, 15), get(0, "b", 16, 18), get(0, "a", 17, 19),
		}, nil, "overlap", 0},
		{"read of a rolled-back value", []linOp{set(0, "a", 1, 2), get(0, "z", 3, 4)}, []string{"z"}, "aborted read", 0},
		{"read of a value never written", []linOp{set(0, "a", 1, 2), get(0, "q", 3, 4)}, nil, "garbage", 0},
		{"read of another key's value", []linOp{set(1, "a", 1, 2), get(0, "a", 3, 4)}, nil, "garbage", 0},
		{"absent after a set, no delete", []linOp{set(0, "a", 1, 2), get(0, "", 3, 4)}, nil, "stale absent", 0},
		{"absent after a delete then a set", []linOp{
			del(0, 1, 2), set(0, "a", 3, 4), get(0, "", 5, 6),
		}, nil, "stale absent", 0},
		{"two absent reads that need the one delete on both sides of a set", []linOp{
			// The first absent read forces the delete before the set,
			// the second needs it after.
			set(0, "a", 1, 2), del(0, 3, 10), get(0, "", 4, 5), set(0, "b", 6, 9), get(0, "", 11, 12),
		}, nil, "stale absent", 0},
	}
	for _, tc := range cases {
		h := &linHistory{ops: tc.ops, never: map[string]bool{}}
		for _, v := range tc.never {
			h.never[v] = true
		}
		res := checkLinearizable(h)
		var got []string
		for _, a := range res.anomalies {
			got = append(got, a.kind)
		}
		switch {
		case tc.want == "" && len(got) > 0, tc.want != "" && (len(got) == 0 || slices.ContainsFunc(got, func(k string) bool { return k != tc.want })):
			t.Errorf("%s: checker reported %q, want %q:\n%s", tc.name, got, tc.want, linReport(res.anomalies))
		case len(res.undecided) > 0:
			t.Errorf("%s: keys %v undecided", tc.name, res.undecided)
		case tc.want == "" && res.pairs != tc.pairs:
			t.Errorf("%s: %d overlapping pairs, want %d", tc.name, res.pairs, tc.pairs)
		case strings.Contains(tc.name, "undone") && res.choices != 3:
			t.Errorf("%s: the search tried %d choices, want 3", tc.name, res.choices)
		}
	}
}

// TestLinearizableCheckerRandom compares the checker with an exhaustive
// search on small random histories of one key: the reads return what a
// register gives at random points inside the intervals (a linearizable
// history), then, in half of them, one read returns another value. The
// checker must agree with the search on every one.
func TestLinearizableCheckerRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 0))
	var valid, invalid int
	caught := map[string]int{}
	for range 20000 {
		ops := linRandomHistory(rng, 3+rng.IntN(7))
		want := linBrute(ops)
		res := checkLinearizable(&linHistory{ops: slices.Clone(ops), never: map[string]bool{}})
		switch {
		case len(res.undecided) > 0:
			t.Fatalf("undecided: %v", ops)
		case want && len(res.anomalies) > 0:
			t.Fatalf("anomalies in a linearizable history %v:\n%s", ops, linReport(res.anomalies))
		case !want && len(res.anomalies) == 0:
			t.Fatalf("proved a history that is not linearizable: %v", ops)
		case want:
			valid++
		default:
			invalid++
			caught[res.anomalies[0].kind]++
		}
	}
	t.Logf("%d linearizable histories, %d not, caught as %v", valid, invalid, caught)
}

// linRandomHistory returns n operations on key 0 with random intervals.
func linRandomHistory(rng *rand.Rand, n int) []linOp {
	// Endpoints at random, intervals of mean length spread: ranked, they
	// give distinct clock times.
	spread := []float64{0.3, 1, 5}[rng.IntN(3)]
	ends := make([]float64, 2*n)
	for i := 0; i < n; i++ {
		ends[2*i] = rng.Float64() * float64(n)
		ends[2*i+1] = ends[2*i] + rng.ExpFloat64()*spread
	}
	rank := make([]int, 2*n)
	for i := range rank {
		rank[i] = i
	}
	slices.SortFunc(rank, func(a, b int) int { return cmp.Compare(ends[a], ends[b]) })
	times := make([]int64, 2*n)
	for t, i := range rank {
		times[i] = int64(t + 1)
	}
	ops := make([]linOp, n)
	points := make([]float64, n)
	var values []string
	for i := range ops {
		ops[i] = linOp{kind: linRead, inv: times[2*i], res: times[2*i+1]}
		switch p := rng.IntN(10); {
		case p < 4:
			ops[i].kind, ops[i].value = linSet, fmt.Sprintf("v%d", i)
			values = append(values, ops[i].value)
		case p < 6:
			ops[i].kind = linDel
		}
		points[i] = float64(ops[i].inv) + rng.Float64()*float64(ops[i].res-ops[i].inv)
	}
	order := rng.Perm(n)
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(points[a], points[b]) })
	state := ""
	for _, i := range order {
		switch ops[i].kind {
		case linSet:
			state = ops[i].value
		case linDel:
			state = ""
		default:
			ops[i].value = state
		}
	}
	var reads []int
	for i := range ops {
		if ops[i].kind == linRead {
			reads = append(reads, i)
		}
	}
	if len(reads) > 0 && rng.IntN(2) == 0 {
		i := reads[rng.IntN(len(reads))]
		ops[i].value = ""
		if k := rng.IntN(len(values) + 1); k < len(values) {
			ops[i].value = values[k]
		}
	}
	return ops
}

// linBrute decides by exhaustive search whether one key's history is
// linearizable.
func linBrute(ops []linOp) bool {
	done := make([]bool, len(ops))
	var search func(n int, state string) bool
	search = func(n int, state string) bool {
		if n == len(ops) {
			return true
		}
		first := int64(1 << 62) // the earliest response of the operations left
		for i, op := range ops {
			if !done[i] {
				first = min(first, op.res)
			}
		}
		for i, op := range ops {
			if done[i] || op.inv > first {
				continue
			}
			next := state
			switch {
			case op.kind == linSet:
				next = op.value
			case op.kind == linDel:
				next = ""
			case op.value != state:
				continue
			}
			done[i] = true
			ok := search(n+1, next)
			done[i] = false
			if ok {
				return true
			}
		}
		return false
	}
	return search(0, "")
}
