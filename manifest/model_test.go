package manifest

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/internal/vfs/errorfs"
)

// engine plays the engine's part over a manifest: it makes flush,
// compaction, move and namespace edits, validates each on a Builder,
// appends it, and installs the new version; it rolls the manifest when
// asked to (by rollEvery or ShouldRoll). States are compared through
// describe. acked is the state of the last edit or roll that returned nil;
// allowed holds every state a recovery may find (acked, plus those of
// operations that failed or are in flight).
type engine struct {
	t       testing.TB
	fs      vfs.FS
	rng     *rand.Rand
	w       *Writer
	v       *Version
	s       State
	seq     base.SeqNum
	acked   string
	allowed map[string]bool
}

// none is the description of a store without CURRENT.
const none = "no store"

// newEngine creates a store in directory db: manifest 1, empty.
func newEngine(t testing.TB, fs vfs.FS, rng *rand.Rand) (*engine, error) {
	m := &engine{t: t, fs: fs, rng: rng, v: mustBuild(t, nil), acked: none}
	m.allowed = map[string]bool{none: true}
	return m, m.roll()
}

// roll starts a new manifest with the next file number.
func (m *engine) roll() error {
	num := max(m.s.NextFileNumber, 1)
	s := m.s
	s.NextFileNumber = num + 1
	m.allowed[describe(m.v, s)] = true
	w, err := Create(m.fs, "db", num, newFakeWriter, m.v, s)
	if err != nil {
		m.s.NextFileNumber = num + 1 // the number is used, whatever happened
		return err
	}
	if old := m.w; old != nil {
		old.Close() // cleanup errors do not matter
		m.fs.Remove(m.fs.PathJoin("db", FileName(old.FileNum())))
	}
	m.w, m.s = w, s
	m.ack()
	return nil
}

// ack records the current state as the only one recovery may find.
func (m *engine) ack() {
	m.acked = describe(m.v, m.s)
	m.allowed = map[string]bool{m.acked: true}
}

// step makes one random edit and logs it.
func (m *engine) step() error {
	e := m.randomEdit()
	b := NewBuilder(m.v)
	if err := b.Apply(e); err != nil {
		m.t.Fatalf("engine made a bad edit %+v: %v\n%s", e, err, m.v)
	}
	nv, err := b.Build()
	if err != nil {
		m.t.Fatalf("engine made a bad edit %+v: %v\n%s", e, err, m.v)
	}
	ns, err := m.s.Apply(e)
	if err == nil {
		err = Validate(nv, ns)
	}
	if err != nil {
		m.t.Fatalf("engine made a bad edit %+v: %v", e, err)
	}
	m.allowed[describe(nv, ns)] = true
	if err := m.w.Append(e); err != nil {
		nv.Unref() // its own tables stay on disk: the edit may be durable
		return err
	}
	m.v.Unref()
	m.v, m.s = nv, ns
	m.ack()
	return nil
}

// randomEdit returns an edit that applies to m.v and m.s.
func (m *engine) randomEdit() *VersionEdit {
	switch m.rng.IntN(12) {
	case 0, 1, 2, 3:
	case 4, 5:
		if m.v.NumFiles(0) > 0 {
			return m.compact(0, m.v.Files(0))
		}
	case 6, 7:
		if l := 1 + m.rng.IntN(NumLevels-2); m.v.NumFiles(l) > 0 {
			files := m.v.Files(l)
			f := files[m.rng.IntN(len(files))]
			if m.rng.IntN(2) == 0 && len(m.v.Overlaps(l+1, f.Smallest.UserKey, f.Largest.UserKey)) == 0 {
				return m.move(l, f)
			}
			return m.compact(l, []*FileMetadata{f})
		}
	case 8:
		return m.createNamespace()
	case 9:
		if live := m.v.Namespaces(); len(live) > 0 {
			return &VersionEdit{DroppedNamespaces: []base.NamespaceID{live[m.rng.IntN(len(live))].ID}}
		}
	}
	return m.flush()
}

// flush adds one L0 table holding new sequence numbers.
func (m *engine) flush() *VersionEdit {
	num := m.s.NextFileNumber
	a, b := m.rng.IntN(1000), m.rng.IntN(1000)
	lo := m.seq + 1
	m.seq += 1 + m.rng.Uint64N(100)
	return &VersionEdit{
		LogNumber:      num, // as if the flushed memtable's WAL was num-1
		NextFileNumber: num + 1,
		LastSeqNum:     m.seq,
		NewFiles:       []NewFile{{0, meta(num, key(min(a, b)), key(max(a, b)), lo, m.seq)}},
	}
}

// compact merges inputs of level into level+1 with the tables there they
// overlap, writing 1 to 3 tables that split the key range.
func (m *engine) compact(level int, inputs []*FileMetadata) *VersionEdit {
	e := &VersionEdit{}
	lo, hi := 1000, -1
	seqLo, seqHi := base.MaxSeqNum, base.SeqNum(0)
	add := func(l int, f *FileMetadata) {
		e.DeletedFiles = append(e.DeletedFiles, DeletedFile{l, f.FileNum})
		lo, hi = min(lo, keyNum(f.Smallest)), max(hi, keyNum(f.Largest))
		seqLo, seqHi = min(seqLo, f.SmallestSeq), max(seqHi, f.LargestSeq)
	}
	for _, f := range inputs {
		add(level, f)
	}
	for _, f := range m.v.Overlaps(level+1, []byte(key(lo)), []byte(key(hi))) {
		add(level+1, f)
	}
	num := m.s.NextFileNumber
	for start := lo; start <= hi; num++ {
		end := min(hi, start+m.rng.IntN(hi-lo+1))
		e.NewFiles = append(e.NewFiles, NewFile{level + 1, meta(num, key(start), key(end), seqLo, seqHi)})
		start = end + 1
	}
	e.NextFileNumber = num
	return e
}

// keyNum parses the number of a key made by key.
func keyNum(k base.InternalKey) int {
	n, err := strconv.Atoi(string(k.UserKey))
	if err != nil {
		panic(err)
	}
	return n
}

// move moves f from level to level+1, with a copy of its metadata.
func (m *engine) move(level int, f *FileMetadata) *VersionEdit {
	cp := meta(f.FileNum, string(f.Smallest.UserKey), string(f.Largest.UserKey), f.SmallestSeq, f.LargestSeq)
	cp.Smallest, cp.Largest, cp.Size = f.Smallest, f.Largest, f.Size
	return &VersionEdit{
		DeletedFiles: []DeletedFile{{level, f.FileNum}},
		NewFiles:     []NewFile{{level + 1, cp}},
	}
}

// createNamespace creates a namespace with a name not in use.
func (m *engine) createNamespace() *VersionEdit {
	for {
		name := fmt.Sprintf("ns%d", m.rng.IntN(50))
		if _, ok := m.v.NamespaceID(name); !ok {
			return &VersionEdit{CreatedNamespaces: []Namespace{{m.v.NextNamespaceID(), name}}}
		}
	}
}

// loadDescribe loads the store in fs and describes it (none without
// CURRENT).
func loadDescribe(fs vfs.FS, newRR NewRecordReader) (string, error) {
	v, s, _, err := Load(fs, "db", newRR)
	if err != nil {
		if _, cerr := fs.Stat("db/CURRENT"); cerr != nil {
			return none, nil
		}
		return "", err
	}
	return describe(v, s), nil
}

// TestEngineRoundTrip runs the engine's edits and rolls and checks after
// each one that loading the store gives the engine's state.
func TestEngineRoundTrip(t *testing.T) {
	rng := newRand(t)
	fs := newStoreDir(t)
	m, err := newEngine(t, fs, rng)
	if err != nil {
		t.Fatal(err)
	}
	rolls := 0
	for i := range 300 {
		if err := m.step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if m.w.ShouldRoll(4 << 10) {
			rolls++
			if err := m.roll(); err != nil {
				t.Fatalf("roll after step %d: %v", i, err)
			}
		}
		if i%10 == 0 || i == 299 {
			if got, err := loadDescribe(fs, newFakeReader); err != nil || got != m.acked {
				t.Fatalf("step %d: Load:\n%s\nerr %v\nwant\n%s", i, got, err, m.acked)
			}
		}
	}
	if rolls == 0 {
		t.Fatalf("no roll in 300 edits")
	}
	names, _ := fs.List("db")
	t.Logf("%d rolls; files %v; final version:\n%s", rolls, names, m.v)
}

// TestEngineCrash runs the engine over a file system that takes crash
// clones before every operation (only synced state, and random unsynced
// changes kept or torn) and checks that each clone loads to the state
// acknowledged when it was taken or to the one then in flight, never
// anything else and never an error: no acknowledged edit is lost, no
// CURRENT points at a missing or unsynced manifest (TESTPLAN F4, F7).
func TestEngineCrash(t *testing.T) {
	rng := newRand(t)
	mem := newStoreDir(t)
	type point struct {
		clone   crashClone
		allowed map[string]bool
	}
	var points []point
	var m *engine
	fs := hookFS(mem, func(op errorfs.Op) {
		if m != nil {
			points = append(points, point{takeClones(mem, rng, op), maps.Clone(m.allowed)})
		}
	})
	m = &engine{t: t, fs: fs, rng: rng, v: mustBuild(t, nil), acked: none, allowed: map[string]bool{none: true}}
	if err := m.roll(); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := m.step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if m.w.ShouldRoll(2 << 10) {
			if err := m.roll(); err != nil {
				t.Fatalf("roll after step %d: %v", i, err)
			}
		}
	}
	for i, p := range points {
		for _, c := range []*vfs.MemFS{p.clone.strict, p.clone.loose} {
			got, err := loadDescribe(c, newLenientReader)
			if err != nil || !p.allowed[got] {
				t.Fatalf("clone %d of %d (before %v): Load:\n%s\nerr %v\nallowed: %q", i, len(points), p.clone.op, got, err, slices.Collect(maps.Keys(p.allowed)))
			}
		}
	}
	t.Logf("%d crash points checked", len(points))
}

// TestEngineErrorInjection fails each operation of a seeded engine run in
// turn. After an error the engine rolls to a new manifest once (as after a
// failed append, facebook/rocksdb#6331) and stops. The store must then load,
// as it is and after a power cut, to the acknowledged state or to the state
// of an operation that failed, and after a successful roll, to exactly the
// acknowledged one.
func TestEngineErrorInjection(t *testing.T) {
	seed := newRand(t).Uint64()
	run := func(inj errorfs.Injector) (*vfs.MemFS, *engine, *errorfs.FS, error) {
		mem := newStoreDir(t)
		fs := errorfs.Wrap(mem, inj)
		m, err := newEngine(t, fs, rand.New(rand.NewPCG(seed, 1)))
		for i := 0; err == nil && i < 40; i++ {
			if err = m.step(); err == nil && m.w.ShouldRoll(1<<10) {
				err = m.roll()
			}
		}
		return mem, m, fs, err
	}
	_, _, fs, err := run(nil)
	if err != nil {
		t.Fatal(err)
	}
	total := fs.Ops()
	failures := 0
	for i := range total {
		mem, m, _, err := run(errorfs.OnIndex(i, errorfs.ErrInjected))
		if err == nil {
			continue // a cleanup op (Close, Remove of an old manifest) failed
		}
		failures++
		if !errors.Is(err, errorfs.ErrInjected) {
			t.Fatalf("op %d: error %v does not wrap the injected one", i, err)
		}
		if m.w != nil && m.w.Err() != nil && !m.w.ShouldRoll(1<<30) {
			t.Fatalf("op %d: a poisoned writer does not ask to roll", i)
		}
		if m.acked != none {
			if rerr := m.roll(); rerr == nil {
				if m.w.Append(&VersionEdit{}) != nil {
					t.Fatalf("op %d: the new manifest refuses edits", i)
				}
			}
		}
		for name, fs := range map[string]*vfs.MemFS{"as is": mem, "power cut": mem.DropUnsynced()} {
			got, lerr := loadDescribe(fs, newFakeReader)
			if lerr != nil || !m.allowed[got] {
				t.Fatalf("op %d (%v), %s: Load:\n%s\nerr %v\nallowed %q", i, err, name, got, lerr, slices.Collect(maps.Keys(m.allowed)))
			}
		}
	}
	if failures < int(total)/2 {
		t.Fatalf("only %d of %d injected errors surfaced", failures, total)
	}
	t.Logf("%d ops, %d failures surfaced", total, failures)
}
