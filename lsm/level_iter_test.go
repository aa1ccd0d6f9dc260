package lsm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/testseed"
	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/manifest"
	"github.com/stratadb/strata/sstable"
)

// lvlEntry is one entry of a level's model.
type lvlEntry struct {
	key   base.InternalKey
	value []byte
}

// lvlLevel is a level of real tables in directory "db" of a MemFS, with its
// model: the entries of each file.
type lvlLevel struct {
	fs      *vfs.MemFS
	files   []*manifest.FileMetadata
	entries [][]lvlEntry // entries[i] are those of files[i]
	lastKey int          // number of the last user key (see lvlUserKey)
}

func lvlTableName(fileNum uint64) string { return fmt.Sprintf("%06d.sst", fileNum) }

// lvlUserKey is the user key of number n; keys of consecutive numbers have
// no key of the form lvlUserKey(_) between them.
func lvlUserKey(n int) []byte { return []byte(fmt.Sprintf("k%06d", n)) }

// lvlShape says how buildLevel makes a level.
type lvlShape struct {
	files, maxKeys int // number of files, most user keys per file
	fixed          bool
	writer         *sstable.WriterOptions // overrides the random options
}

// buildLevel writes a level of s.files tables of 1..s.maxKeys user keys each
// (exactly s.maxKeys when s.fixed), each with 1..3 versions, sets and
// deletions, with random block sizes, codecs and filters (s.fixed: no
// compression, filters, small blocks).
func buildLevel(t testing.TB, rng *rand.Rand, s lvlShape) *lvlLevel {
	t.Helper()
	l := &lvlLevel{fs: vfs.NewMem()}
	if err := l.fs.MkdirAll("db", 0o755); err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := range s.files {
		keys := s.maxKeys
		if !s.fixed {
			keys = 1 + rng.IntN(s.maxKeys)
		}
		var es []lvlEntry
		for range keys {
			n += 1 + rng.IntN(3)
			es = append(es, lvlVersions(rng, lvlUserKey(n))...)
		}
		l.entries = append(l.entries, es)
		o := lvlWriterOptions(rng, s.fixed)
		if s.writer != nil {
			o = *s.writer
		}
		l.files = append(l.files, writeLevelTable(t, l.fs, uint64(10+i), es, o))
	}
	l.lastKey = n
	return l
}

// lvlVersions returns 1..3 versions of uk, newest first.
func lvlVersions(rng *rand.Rand, uk []byte) []lvlEntry {
	seqs := rng.Perm(1000)[:1+rng.IntN(3)]
	slices.SortFunc(seqs, func(a, b int) int { return b - a })
	var es []lvlEntry
	for _, s := range seqs {
		e := lvlEntry{key: base.InternalKey{UserKey: uk, Trailer: base.MakeTrailer(uint64(s+1), base.KindSet)}}
		if rng.IntN(5) == 0 {
			e.key.Trailer = base.MakeTrailer(uint64(s+1), base.KindDelete)
		} else {
			e.value = []byte(fmt.Sprintf("%s@%d:%s", uk, s+1, bytes.Repeat([]byte("v"), rng.IntN(40))))
		}
		es = append(es, e)
	}
	return es
}

func lvlWriterOptions(rng *rand.Rand, fixed bool) sstable.WriterOptions {
	if fixed {
		return sstable.WriterOptions{BlockSize: 128, Compression: sstable.NoCompression}
	}
	o := sstable.WriterOptions{BlockSize: 64 + rng.IntN(512), Compression: sstable.Compression(rng.IntN(4))}
	if rng.IntN(3) == 0 {
		o.FilterBitsPerKey = -1
	}
	return o
}

// writeLevelTable writes es as table fileNum and returns its metadata.
func writeLevelTable(t testing.TB, fs vfs.FS, fileNum uint64, es []lvlEntry, o sstable.WriterOptions) *manifest.FileMetadata {
	t.Helper()
	f, err := fs.Create(fs.PathJoin("db", lvlTableName(fileNum)))
	if err != nil {
		t.Fatal(err)
	}
	w := sstable.NewWriter(f, fileNum, o)
	for _, e := range es {
		if err := w.Add(e.key, e.value); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	m := w.Metadata()
	return &manifest.FileMetadata{FileNum: fileNum, Size: m.Size, Smallest: m.Smallest, Largest: m.Largest,
		SmallestSeq: m.SmallestSeq, LargestSeq: m.LargestSeq}
}

// tableCache opens the level's tables, keeping up to size open.
func (l *lvlLevel) tableCache(size int) *sstable.TableCache {
	return sstable.NewTableCache(l.fs, "db", size, sstable.NewCache(4<<20), lvlTableName)
}

// inBounds returns the indexes [lo, hi) of the files that overlap
// [lower, upper) and the model of those files.
func (l *lvlLevel) inBounds(lower, upper []byte) (lo, hi int, model []lvlEntry) {
	lo, hi = len(l.files), 0
	for i, f := range l.files {
		if (lower == nil || bytes.Compare(f.Largest.UserKey, lower) >= 0) &&
			(upper == nil || bytes.Compare(f.Smallest.UserKey, upper) < 0) {
			lo, hi = min(lo, i), i+1
			model = append(model, l.entries[i]...)
		}
	}
	return min(lo, hi), hi, model
}

// randomKey returns a user key near the level's keys: one of them, one
// between two of them, or one before or after all of them.
func (l *lvlLevel) randomKey(rng *rand.Rand) []byte {
	k := lvlUserKey(rng.IntN(l.lastKey + 3))
	switch rng.IntN(6) {
	case 0:
		return append(k, 0)
	case 1:
		return append(k, 'z')
	case 2:
		return []byte{}
	case 3:
		return []byte("l")
	}
	return k
}

// countingOpener wraps a tableOpener, checking that every table is released
// exactly once and counting the tables held.
type countingOpener struct {
	t       testing.TB
	inner   tableOpener
	gets    []uint64 // file numbers asked for, in order
	held    int      // tables got and not released
	maxHeld int
}

func (c *countingOpener) Get(fileNum uint64) (*sstable.Reader, func(), error) {
	c.gets = append(c.gets, fileNum)
	r, release, err := c.inner.Get(fileNum)
	if err != nil {
		return nil, nil, err
	}
	c.held++
	c.maxHeld = max(c.maxHeld, c.held)
	released := false
	return r, func() {
		if released {
			c.t.Errorf("table %d released twice", fileNum)
			return
		}
		released = true
		c.held--
		release()
	}, nil
}

// checkReleased fails unless at most one table was held at a time and none
// is held now.
func (c *countingOpener) checkReleased() {
	c.t.Helper()
	if c.maxHeld > 1 || c.held != 0 {
		c.t.Fatalf("tables held: at most %d at a time, %d now; want 1 and 0", c.maxHeld, c.held)
	}
}

// checkAt fails unless the iterator's state (ok, Key, Value) is the model's
// at pos (invalid when pos is outside the model).
func checkAt(t testing.TB, what string, it *levelIter, ok bool, model []lvlEntry, pos int) {
	t.Helper()
	if err := it.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	want := pos >= 0 && pos < len(model)
	if ok != want {
		t.Fatalf("%s: valid %v, want %v (pos %d of %d)", what, ok, want, pos, len(model))
	}
	if !ok {
		return
	}
	e := model[pos]
	if k := it.Key(); base.CompareInternal(k, e.key) != 0 || !bytes.Equal(it.Value(), e.value) {
		t.Fatalf("%s: at %s=%q, want %s=%q", what, k, it.Value(), e.key, e.value)
	}
}

// modelSeekGE returns the position of the first entry whose user key is >=
// key; modelSeekGE-1 is that of the last one < key.
func modelSeekGE(model []lvlEntry, key []byte) int {
	return sort.Search(len(model), func(i int) bool { return bytes.Compare(model[i].key.UserKey, key) >= 0 })
}

// randomBounds returns nil or random bounds, lower <= upper.
func (l *lvlLevel) randomBounds(rng *rand.Rand) (lower, upper []byte) {
	if rng.IntN(2) == 0 {
		lower = l.randomKey(rng)
	}
	if rng.IntN(2) == 0 {
		upper = l.randomKey(rng)
	}
	if lower != nil && upper != nil && bytes.Compare(lower, upper) > 0 {
		lower, upper = upper, lower
	}
	return lower, upper
}

// TestLevelIterScan compares full forward and backward scans with the model,
// with and without bounds, and checks that only the files within the bounds
// are opened, each once per scan, one at a time.
func TestLevelIterScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 1))
	for round := range 4 {
		l := buildLevel(t, rng, lvlShape{files: 1 + rng.IntN(12), maxKeys: 40})
		tc := l.tableCache(2)
		for b := range 8 {
			lower, upper := l.randomBounds(rng)
			if b == 0 {
				lower, upper = nil, nil
			}
			lo, hi, model := l.inBounds(lower, upper)
			what := fmt.Sprintf("round %d, bounds [%q, %q)", round, lower, upper)
			op := &countingOpener{t: t, inner: tc}
			it := newLevelIter(op, l.files, lower, upper)
			pos := 0
			for ok := it.First(); ok || pos < len(model); ok = it.Next() {
				checkAt(t, what+" forward", it, ok, model, pos)
				pos++
			}
			lvlCheckGets(t, what+" forward", op.gets, l.files[lo:hi], false)
			it.init(op, l.files, lower, upper) // releases the open table
			if op.held != 0 {
				t.Fatalf("%s: init kept %d tables", what, op.held)
			}
			op.gets = nil
			pos = len(model) - 1
			for ok := it.Last(); ok || pos >= 0; ok = it.Prev() {
				checkAt(t, what+" backward", it, ok, model, pos)
				pos--
			}
			lvlCheckGets(t, what+" backward", op.gets, l.files[lo:hi], true)
			if err := it.Close(); err != nil {
				t.Fatal(err)
			}
			op.checkReleased()
		}
		tc.Close()
	}
}

// lvlCheckGets fails unless gets names files in order (reversed if reverse).
func lvlCheckGets(t testing.TB, what string, gets []uint64, files []*manifest.FileMetadata, reverse bool) {
	t.Helper()
	var want []uint64
	for _, f := range files {
		want = append(want, f.FileNum)
	}
	if reverse {
		slices.Reverse(want)
	}
	if !slices.Equal(gets, want) {
		t.Fatalf("%s: opened tables %v, want %v", what, gets, want)
	}
}

// TestLevelIterRandom runs random seeks followed by random Next and Prev
// steps against the model, with random bounds.
func TestLevelIterRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 2))
	for round := range 4 {
		l := buildLevel(t, rng, lvlShape{files: 1 + rng.IntN(10), maxKeys: 30})
		tc := l.tableCache(1 + rng.IntN(3))
		for range 4 {
			lower, upper := l.randomBounds(rng)
			_, _, model := l.inBounds(lower, upper)
			op := &countingOpener{t: t, inner: tc}
			it := newLevelIter(op, l.files, lower, upper)
			for i := range 150 {
				lvlRandomWalk(t, rng, l, it, model, fmt.Sprintf("round %d, bounds [%q, %q), walk %d", round, lower, upper, i))
			}
			if err := it.Close(); err != nil {
				t.Fatal(err)
			}
			op.checkReleased()
		}
		tc.Close()
	}
}

// lvlRandomWalk positions it at random, then steps at random while it is
// valid, checking every move against the model.
func lvlRandomWalk(t *testing.T, rng *rand.Rand, l *lvlLevel, it *levelIter, model []lvlEntry, what string) {
	var ok bool
	var pos int
	switch key := l.randomKey(rng); rng.IntN(4) {
	case 0:
		ok, pos, what = it.First(), 0, what+": First"
	case 1:
		ok, pos, what = it.Last(), len(model)-1, what+": Last"
	case 2:
		ok, pos, what = it.SeekGE(key), modelSeekGE(model, key), what+fmt.Sprintf(": SeekGE(%q)", key)
	default:
		ok, pos, what = it.SeekLT(key), modelSeekGE(model, key)-1, what+fmt.Sprintf(": SeekLT(%q)", key)
	}
	checkAt(t, what, it, ok, model, pos)
	for step := 0; ok && step < 30; step++ {
		if rng.IntN(3) == 0 {
			ok, pos = it.Prev(), pos-1
		} else {
			ok, pos = it.Next(), pos+1
		}
		checkAt(t, fmt.Sprintf("%s, step %d", what, step), it, ok, model, pos)
	}
	if !ok && (it.Next() || it.Prev()) {
		t.Fatalf("%s: an unpositioned iterator moved", what)
	}
}

// TestLevelIterSeekOpensOneTable checks that a seek opens only the table it
// lands in, chosen from the files' bounds, and reuses the open table.
func TestLevelIterSeekOpensOneTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 3))
	l := buildLevel(t, rng, lvlShape{files: 6, maxKeys: 20, fixed: true})
	tc := l.tableCache(1)
	defer tc.Close()
	for i, f := range l.files {
		op := &countingOpener{t: t, inner: tc}
		it := newLevelIter(op, l.files, nil, nil)
		// Between file i-1's largest key and file i's smallest: lands in i.
		var before []byte
		if i > 0 {
			before = append(slices.Clone(l.files[i-1].Largest.UserKey), 0)
		}
		if !it.SeekGE(before) || !it.SeekGE(f.Largest.UserKey) || !it.SeekLT(append(slices.Clone(f.Largest.UserKey), 0)) {
			t.Fatalf("seeks into file %d: invalid, %v", i, it.Error())
		}
		lvlCheckGets(t, fmt.Sprintf("seeks into file %d", i), op.gets, l.files[i:i+1], false)
		op.gets = nil
		if ok := it.SeekLT(f.Smallest.UserKey); ok != (i > 0) || it.Error() != nil {
			t.Fatalf("SeekLT(smallest of file %d): valid %v, %v", i, ok, it.Error())
		}
		lvlCheckGets(t, fmt.Sprintf("SeekLT(smallest of file %d)", i), op.gets, l.files[max(i-1, 0):i], false)
		it.Close()
		op.checkReleased()
	}
}

// TestLevelIterGet compares getFromLevel with the model for present and
// absent keys at random sequence numbers, and checks that it opens at most
// the one table that may hold the key.
func TestLevelIterGet(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 4))
	for range 4 {
		l := buildLevel(t, rng, lvlShape{files: 1 + rng.IntN(10), maxKeys: 30})
		tc := l.tableCache(2)
		for range 400 {
			key, seq := l.randomKey(rng), uint64(rng.IntN(1100))
			op := &countingOpener{t: t, inner: tc}
			v, kind, found, err := getFromLevel(l.files, op, key, seq)
			if err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("getFromLevel(%q, %d)", key, seq)
			want, wantFound, fi := l.modelGet(key, seq)
			if found != wantFound || (found && (kind != want.key.Kind() || !bytes.Equal(v, want.value))) {
				t.Fatalf("%s = %q %s %v, want %q %s %v", what, v, kind, found, want.value, want.key.Kind(), wantFound)
			}
			if want := fi >= 0 && l.files[fi].SmallestSeq <= seq; want != (len(op.gets) == 1) || len(op.gets) > 1 {
				t.Fatalf("%s opened %v, want table %d: %v", what, op.gets, fi, want)
			}
			op.checkReleased()
		}
		tc.Close()
	}
	if _, _, found, err := getFromLevel(nil, nil, []byte("a"), 5); found || err != nil {
		t.Fatalf("getFromLevel of an empty level: found %v, %v", found, err)
	}
}

// modelGet returns the newest version of uk at or below seq, and the index
// of the file whose user-key range holds uk (-1 if none).
func (l *lvlLevel) modelGet(uk []byte, seq uint64) (lvlEntry, bool, int) {
	for i, f := range l.files {
		if bytes.Compare(f.Smallest.UserKey, uk) > 0 || bytes.Compare(f.Largest.UserKey, uk) < 0 {
			continue
		}
		for _, e := range l.entries[i] {
			if bytes.Equal(e.key.UserKey, uk) && e.key.Seq() <= seq {
				return e, true, i
			}
		}
		return lvlEntry{}, false, i
	}
	return lvlEntry{}, false, -1
}

// damageTable applies damage to the bytes of table fileNum of l.
func (l *lvlLevel) damageTable(t *testing.T, fileNum uint64, damage func([]byte)) {
	t.Helper()
	name := l.fs.PathJoin("db", lvlTableName(fileNum))
	b, err := vfs.ReadFile(l.fs, name)
	if err != nil {
		t.Fatal(err)
	}
	damage(b)
	if err := vfs.WriteFile(l.fs, name, b); err != nil {
		t.Fatal(err)
	}
}

// TestLevelIterCorruption checks that a damaged data block, a damaged
// footer and a missing table stop the iterator with an error (the damage
// wrapping base.ErrCorruption) after only correct entries, that the error
// is sticky, and that getFromLevel reports it.
func TestLevelIterCorruption(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 5))
	l := buildLevel(t, rng, lvlShape{files: 5, maxKeys: 20, fixed: true})
	l.damageTable(t, l.files[1].FileNum, func(b []byte) { b[3] ^= 0x40 })     // data block 0
	l.damageTable(t, l.files[3].FileNum, func(b []byte) { b[len(b)-1] ^= 1 }) // footer magic
	if err := l.fs.Remove(l.fs.PathJoin("db", lvlTableName(l.files[4].FileNum))); err != nil {
		t.Fatal(err)
	}
	tc := l.tableCache(2)
	defer tc.Close()
	cases := []struct {
		name       string
		files      []int // indexes in l.files of the level's files
		forward    bool
		corruption bool
	}{
		{"forward into a damaged block", []int{0, 1, 2}, true, true},
		{"backward into a damaged block", []int{0, 1}, false, true},
		{"forward into a damaged footer", []int{2, 3}, true, true},
		{"backward from a missing table", []int{3, 4}, false, false},
		{"forward into a missing table", []int{2, 4}, true, false},
	}
	for _, c := range cases {
		var files []*manifest.FileMetadata
		var model []lvlEntry
		for _, i := range c.files {
			files = append(files, l.files[i])
			model = append(model, l.entries[i]...)
		}
		op := &countingOpener{t: t, inner: tc}
		it := newLevelIter(op, files, nil, nil)
		lvlCheckDamaged(t, c.name, it, c.forward, model, c.corruption)
		op.checkReleased()
	}
	for _, i := range []int{1, 3, 4} {
		_, _, _, err := getFromLevel(l.files, tc, l.files[i].Smallest.UserKey, base.MaxSeqNum)
		if err == nil || errors.Is(err, base.ErrCorruption) != (i != 4) {
			t.Errorf("getFromLevel in damaged table %d: %v", l.files[i].FileNum, err)
		}
	}
}

// lvlCheckDamaged scans it from First forward or from Last backward, and checks that it
// stops early with an error after returning only entries of the model (a
// prefix of it going forward, a suffix going backward), that the error
// sticks, and that Close returns it.
func lvlCheckDamaged(t *testing.T, what string, it *levelIter, forward bool, model []lvlEntry, corruption bool) {
	t.Helper()
	start := it.Last
	if forward {
		start = it.First
	}
	n := 0
	for ok := start(); ok; n++ {
		pos := n
		if !forward {
			pos = len(model) - 1 - n
		}
		checkAt(t, fmt.Sprintf("%s, entry %d", what, n), it, ok, model, pos)
		if forward {
			ok = it.Next()
		} else {
			ok = it.Prev()
		}
	}
	err := it.Error()
	t.Logf("%s: %d entries, then %v", what, n, err)
	if it.Next() || it.Prev() {
		t.Fatalf("%s: moved after an error", what)
	}
	if err == nil || n >= len(model) || errors.Is(err, base.ErrCorruption) != corruption {
		t.Fatalf("%s: stopped after %d of %d entries with %v, want an error (corruption %v)", what, n, len(model), err, corruption)
	}
	if it.First() || it.SeekGE(nil) || it.Last() || it.SeekLT([]byte("z")) || it.Error() != err {
		t.Fatalf("%s: the error did not stick: %v", what, it.Error())
	}
	if cerr := it.Close(); cerr != err || it.Close() != err {
		t.Fatalf("%s: Close = %v, want %v", what, cerr, err)
	}
}

// TestLevelIterAllocs checks that scans and seeks across tables that are
// open in the table cache, with cached blocks, allocate nothing, nor does
// getFromLevel.
func TestLevelIterAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 6))
	l := buildLevel(t, rng, lvlShape{files: 4, maxKeys: 30, fixed: true})
	tc := l.tableCache(len(l.files))
	defer tc.Close()
	it := newLevelIter(tc, l.files, nil, nil)
	defer it.Close()
	keys := make([][]byte, 16)
	for i := range keys {
		keys[i] = l.randomKey(rng)
	}
	n := 0
	run := func() {
		for ok := it.First(); ok; ok = it.Next() {
			n++
		}
		for ok := it.Last(); ok; ok = it.Prev() {
			n++
		}
		for _, k := range keys {
			it.SeekGE(k)
			it.SeekLT(k)
			if _, _, _, err := getFromLevel(l.files, tc, k, base.MaxSeqNum); err != nil {
				t.Fatal(err)
			}
		}
	}
	run() // opens the tables and caches the blocks
	if a := testing.AllocsPerRun(5, run); a != 0 {
		t.Fatalf("%v allocations per run of %d entries", a, n/6)
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
}

// TestLevelIterEmpty checks an empty level, a level with every file outside
// the bounds, and that Close is idempotent and stops the iterator.
func TestLevelIterEmpty(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 7))
	l := buildLevel(t, rng, lvlShape{files: 3, maxKeys: 5, fixed: true})
	tc := l.tableCache(2)
	defer tc.Close()
	op := &countingOpener{t: t, inner: tc}
	for _, it := range []*levelIter{
		newLevelIter(op, nil, nil, nil),
		newLevelIter(op, l.files, []byte("l"), nil),
		newLevelIter(op, l.files, nil, []byte("k")),
		newLevelIter(op, l.files, []byte("k9"), []byte("k0")),
		{}, // zero
	} {
		if it.First() || it.Last() || it.SeekGE(nil) || it.SeekLT([]byte("z")) || it.Next() || it.Prev() {
			t.Fatal("an empty level iterator found an entry")
		}
		if err := it.Close(); err != nil || len(op.gets) != 0 {
			t.Fatalf("Close = %v, opened %v", err, op.gets)
		}
	}
	it := newLevelIter(op, l.files, nil, nil)
	if !it.First() {
		t.Fatal(it.Error())
	}
	if it.Close() != nil || it.Close() != nil || op.held != 0 {
		t.Fatalf("Close twice: %d tables held", op.held)
	}
	if it.First() || it.Next() || it.SeekGE(nil) || it.Last() || it.Prev() || op.held != 0 {
		t.Fatal("a closed level iterator moved")
	}
}

// benchLevel builds a level of files tables of keys user keys each (1 to 3
// versions of each, values of 10 to 50 bytes) with default table options,
// opened through a table cache that holds them all and caches their blocks.
func benchLevel(b *testing.B, files, keys int) (*lvlLevel, *sstable.TableCache) {
	rng := rand.New(rand.NewPCG(1, 2))
	l := buildLevel(b, rng, lvlShape{files: files, maxKeys: keys, fixed: true, writer: &sstable.WriterOptions{}})
	tc := sstable.NewTableCache(l.fs, "db", files, sstable.NewCache(256<<20), lvlTableName)
	b.Cleanup(func() { tc.Close() })
	return l, tc
}

// BenchmarkLevelIterNext measures Next per entry over a level, crossing
// table boundaries every keys entries (times the versions per key).
func BenchmarkLevelIterNext(b *testing.B) {
	for _, keys := range []int{64, 4096} {
		b.Run(fmt.Sprintf("keysPerTable=%d", keys), func(b *testing.B) {
			l, tc := benchLevel(b, 8, keys)
			it := newLevelIter(tc, l.files, nil, nil)
			defer it.Close()
			for ok := it.First(); ok; ok = it.Next() { // warm the caches
			}
			b.ReportAllocs()
			it.First()
			for b.Loop() {
				if !it.Next() && !it.First() {
					b.Fatal(it.Error())
				}
			}
		})
	}
}

// BenchmarkLevelIterSeekGE measures a seek to a random key of a level.
func BenchmarkLevelIterSeekGE(b *testing.B) {
	l, tc := benchLevel(b, 8, 4096)
	it := newLevelIter(tc, l.files, nil, nil)
	defer it.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = lvlUserKey(rng.IntN(l.lastKey))
	}
	for _, k := range keys {
		it.SeekGE(k)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		it.SeekGE(keys[i%len(keys)])
		i++
	}
}

// BenchmarkGetFromLevel measures a point read of a random key of a level,
// present or absent (the filter skips most of those).
func BenchmarkGetFromLevel(b *testing.B) {
	l, tc := benchLevel(b, 8, 4096)
	rng := rand.New(rand.NewPCG(5, 6))
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = lvlUserKey(rng.IntN(l.lastKey))
	}
	for _, k := range keys {
		getFromLevel(l.files, tc, k, base.MaxSeqNum)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, _, err := getFromLevel(l.files, tc, keys[i%len(keys)], base.MaxSeqNum); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
