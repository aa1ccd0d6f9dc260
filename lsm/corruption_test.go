package lsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/testseed"
	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/manifest"
)

// corrExhaustive makes TestCorruption damage every byte of the WAL files
// instead of every header byte, the bytes around every record end and a
// stride through the payloads.
var corrExhaustive = flag.Bool("corruption.exhaustive", false,
	"TestCorruption: damage every byte of the WAL files (a few minutes with -race)")

// corrCase is one damage to one file of a store.
type corrCase struct {
	store  *corrStore
	kind   string // what the tally groups it under
	file   string
	damage string // flip, zero16 or trunc
	off    int64
	bit    uint
	wal    *corrWAL // for WAL damage
}

func (c corrCase) String() string {
	s := fmt.Sprintf("store %s, %s %s: %s at offset %d", c.store.name, c.kind, c.file, c.damage, c.off)
	if c.damage == "flip" {
		s += fmt.Sprintf(" (bit %d)", c.bit)
	}
	return s
}

// damageEnd returns the end of the damaged bytes (for a truncation, of
// the file).
func (c corrCase) damageEnd() int64 {
	switch c.damage {
	case "flip":
		return c.off + 1
	case "zero16":
		return c.off + 16
	}
	return int64(len(c.store.files[c.file]))
}

// damaged returns the store's files with the damage applied.
func (c corrCase) damaged() map[string][]byte {
	files := make(map[string][]byte, len(c.store.files))
	for n, b := range c.store.files {
		files[n] = b
	}
	b := slices.Clone(c.store.files[c.file])
	switch c.damage {
	case "flip":
		b[c.off] ^= 1 << c.bit
	case "zero16":
		clear(b[c.off:min(c.off+16, int64(len(b)))])
	case "trunc":
		b = b[:c.off]
	}
	files[c.file] = b
	return files
}

// corrTally counts outcomes by kind of damage.
type corrTally struct {
	mu     sync.Mutex
	counts map[string]map[string]int
}

func (t *corrTally) add(kind, outcome string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counts == nil {
		t.counts = map[string]map[string]int{}
	}
	if t.counts[kind] == nil {
		t.counts[kind] = map[string]int{}
	}
	t.counts[kind][outcome]++
}

func (t *corrTally) String() string {
	var b strings.Builder
	for _, kind := range slices.Sorted(maps.Keys(t.counts)) {
		total := 0
		var parts []string
		for _, o := range slices.Sorted(maps.Keys(t.counts[kind])) {
			parts = append(parts, fmt.Sprintf("%s %d", o, t.counts[kind][o]))
			if strings.HasPrefix(o, "open") {
				total += t.counts[kind][o]
			}
		}
		fmt.Fprintf(&b, "\n  %-34s %5d cases: %s", kind, total, strings.Join(parts, ", "))
	}
	return b.String()
}

// TestCorruption is TESTPLAN S4. It builds two small stores on a MemFS
// (corrBuildA, corrBuildB: tables in levels 0 and 1, a manifest of five
// records, an older WAL and the newest one, NoSync in A, synced commits
// in B's newest WAL), then damages one file at a time, in a fresh copy of
// the store each time, and opens it:
//
//   - CURRENT and A's manifest: every byte, a bit flip, 16 zero bytes from
//     there, a truncation there;
//   - A's two WAL files and B's newest: the same three damages at every
//     byte of every chunk header, within 2 bytes of every record end, and
//     at corrWALSamples evenly spaced offsets (every byte with
//     -corruption.exhaustive);
//   - A's tables: a random bit at 300 offsets, one in each of 300 equal
//     strata of their bytes (so every block gets some), 6 more in each of
//     the index, filter and properties blocks and the footer of each
//     table, and 12 truncations per table (at 0, in and before the footer,
//     and spread).
//
// The outcome must be an Open error wrapping ErrCorruption that names the
// damaged file, or a store whose every Get and scan (both ways) returns
// the exact value of a prefix of the commits or an error wrapping
// ErrCorruption. Only the newest WAL may lose commits: those from the
// damaged record on, when no undamaged later chunk records a synced offset
// beyond the damage (the WAL's documented limit: a torn tail cannot be told
// from damage to the last synced record); a truncation of it must open to
// the records before the cut. A damaged table must fail Check; Compact
// must then fail with ErrCorruption or succeed, and every read after it
// (after a reopen, when it failed) must still be right or report the
// damage. The test logs the outcomes per kind of file and damage.
//
// The workload (corrWrites) overwrites and deletes keys across levels, so
// that a damaged newer version silently skipped shows as a stale value; the
// fault workload (faultKey, faultValue) never overwrites a key, which is
// why it is not reused here. The engine bugs it found are kept as regression
// tests in corruption_bugs_test.go.
func TestCorruption(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 0))
	a := corrBuildA(t)
	b := corrBuildB(t, a)
	for _, s := range []*corrStore{a, b} {
		corrSanity(t, s)
	}
	var cases []corrCase
	cases = append(cases, corrMetaCases(a)...)
	for _, w := range a.wals {
		cases = append(cases, corrWALCases(a, w)...)
	}
	cases = append(cases, corrWALCases(b, b.wals[len(b.wals)-1])...)
	cases = append(cases, corrTableCases(a, rng)...)
	var tally corrTally
	var failures atomic.Int64
	corrRun(cases, func(c corrCase) {
		if err := corrRunCase(c, &tally); err != nil && failures.Add(1) <= 30 {
			t.Errorf("%s: %v", c, err)
		}
	})
	if n := failures.Load(); n > 30 {
		t.Errorf("... %d failures in all", n)
	}
	sampled := fmt.Sprintf("every byte of each chunk header, 2 bytes either side of each record end, %d evenly spaced offsets", corrWALSamples)
	if *corrExhaustive {
		sampled = "every byte"
	}
	t.Logf("store A: %s; store B: %s; WAL damage at %s; %d cases by file kind and outcome:%s",
		corrDescribe(a), corrDescribe(b), sampled, len(cases), &tally)
}

// corrSanity checks that the undamaged store passes Check and opens to all
// its commits.
func corrSanity(t *testing.T, s *corrStore) {
	fs := corrRestore(t, s.files)
	if r, err := Check(corrDir, &Options{FS: fs}); err != nil {
		t.Fatalf("store %s: Check: %v\n%s", s.name, err, r)
	}
	d, err := Open(corrDir, corrOptions(fs, s.noSync))
	if err != nil {
		t.Fatalf("store %s: %v", s.name, err)
	}
	defer d.Close()
	if r, err := corrVerify(d, s.txns, s.txns); err != nil || r.corrupt > 0 {
		t.Fatalf("store %s: undamaged store holds %d commits, %d reads failed: %v", s.name, r.k, r.corrupt, err)
	}
}

func corrDescribe(s *corrStore) string {
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(s.files)) {
		what := ""
		if level, ok := s.levels[n]; ok {
			what = fmt.Sprintf(" L%d", level)
		}
		for _, w := range s.wals {
			if w.name == n {
				what = fmt.Sprintf(" %d records", len(w.recEnds))
			}
		}
		parts = append(parts, fmt.Sprintf("%s %dB%s", n, len(s.files[n]), what))
	}
	return strings.Join(parts, ", ")
}

// corrRun runs f on every case, on as many goroutines as CPUs.
func corrRun(cases []corrCase, f func(corrCase)) {
	ch := make(chan corrCase)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				f(c)
			}
		}()
	}
	for _, c := range cases {
		ch <- c
	}
	close(ch)
	wg.Wait()
}

// corrMetaCases damages every byte of CURRENT and the manifest: a bit flip
// (bit offset%8), 16 zero bytes from there, a truncation there.
func corrMetaCases(s *corrStore) []corrCase {
	var cases []corrCase
	for n, b := range s.files {
		kind := "CURRENT"
		if _, ok := manifest.ParseFileName(n); ok {
			kind = "MANIFEST"
		} else if n != manifest.CurrentName {
			continue
		}
		for off := range int64(len(b)) {
			for _, dmg := range []string{"flip", "zero16", "trunc"} {
				cases = append(cases, corrCase{store: s, kind: kind, file: n, damage: dmg, off: off, bit: uint(off % 8)})
			}
		}
	}
	return cases
}

// corrWALCases damages WAL file w at every byte of every chunk header,
// every byte within 2 of a record's end and corrWALSamples evenly spaced
// offsets (every byte with -corruption.exhaustive).
func corrWALCases(s *corrStore, w *corrWAL) []corrCase {
	kind := "WAL older"
	switch {
	case w.newest && s.noSync:
		kind = "WAL newest, NoSync"
	case w.newest:
		kind = "WAL newest, synced"
	}
	size := int64(len(s.files[w.name]))
	pick := make([]bool, size)
	for off := range size {
		pick[off] = *corrExhaustive || off%max(size/corrWALSamples, 1) == 0
	}
	for _, c := range w.chunks {
		for off := c.off; off < c.off+corrWALHeader; off++ {
			pick[off] = true
		}
	}
	for _, e := range w.recEnds {
		for off := max(e-2, 0); off < min(e+2, size); off++ {
			pick[off] = true
		}
	}
	var cases []corrCase
	for off := range size {
		if !pick[off] {
			continue
		}
		for _, dmg := range []string{"flip", "zero16", "trunc"} {
			cases = append(cases, corrCase{store: s, kind: kind, file: w.name, damage: dmg, off: off, bit: uint(off % 8), wal: w})
		}
	}
	return cases
}

// corrTableCases flips a random bit at 300 positions spread over the
// tables (one per stratum of their bytes, so every block gets some), and
// 6 more in each part of each table other than its data blocks (index,
// filter, properties, footer), and truncates each table at 12 positions:
// at 0, in the footer, and spread. Flips are tallied by the part they hit.
func corrTableCases(s *corrStore, rng *rand.Rand) []corrCase {
	var names []string
	total := int64(0)
	for n := range s.levels {
		names = append(names, n)
		total += int64(len(s.files[n]))
	}
	slices.Sort(names)
	const flips, partFlips, truncs = 300, 6, 12
	var cases []corrCase
	for _, n := range names {
		size := int64(len(s.files[n]))
		kind := fmt.Sprintf("table L%d", s.levels[n])
		k := max(1, int(flips*size/total))
		for i := range k {
			lo, hi := int64(i)*size/int64(k), int64(i+1)*size/int64(k)
			off := lo + rng.Int64N(hi-lo)
			cases = append(cases, corrCase{store: s, kind: kind + " " + corrTablePart(s.files[n], off),
				file: n, damage: "flip", off: off, bit: uint(rng.IntN(8))})
		}
		for _, part := range slices.Sorted(maps.Keys(corrTableParts(s.files[n]))) {
			r := corrTableParts(s.files[n])[part]
			for range partFlips {
				cases = append(cases, corrCase{store: s, kind: kind + " " + part, file: n, damage: "flip",
					off: r[0] + rng.Int64N(r[1]-r[0]), bit: uint(rng.IntN(8))})
			}
		}
		offs := []int64{0, size - 1, size - 72, size - 73}
		const spread = truncs - 4
		for i := range int64(spread) {
			offs = append(offs, i*size/spread+rng.Int64N(size/spread))
		}
		for _, off := range offs {
			cases = append(cases, corrCase{store: s, kind: kind, file: n, damage: "trunc", off: off})
		}
	}
	return cases
}

// corrTableParts returns the byte ranges of the parts of table b other
// than its data blocks, after the footer (sstable's package doc): the
// index, filter and properties handles are its first three (offset,
// length) pairs, and each block is followed by a 5-byte trailer.
func corrTableParts(b []byte) map[string][2]int64 {
	size := int64(len(b))
	parts := map[string][2]int64{"footer": {size - 72, size}}
	f := b[size-72:]
	for i, part := range []string{"index", "filter", "properties"} {
		start := int64(binary.LittleEndian.Uint64(f[16*i:]))
		if n := int64(binary.LittleEndian.Uint64(f[16*i+8:])); n > 0 {
			parts[part] = [2]int64{start, start + n + 5}
		}
	}
	return parts
}

// corrTablePart names the part of table b that offset off is in.
func corrTablePart(b []byte, off int64) string {
	for part, r := range corrTableParts(b) {
		if off >= r[0] && off < r[1] {
			return part
		}
	}
	return "data"
}

// corrRunCase applies c's damage to a fresh copy of its store, opens it
// and checks the outcome, which it tallies.
func corrRunCase(c corrCase, tally *corrTally) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	fs := vfs.NewMem()
	if err := fs.MkdirAll(corrDir, 0o755); err != nil {
		return err
	}
	for n, b := range c.damaged() {
		if err := vfs.WriteFile(fs, fs.PathJoin(corrDir, n), b); err != nil {
			return err
		}
	}
	kind := c.kind + " " + c.damage
	if strings.HasPrefix(c.kind, "table") {
		return corrTableCase(c, fs, kind, tally)
	}
	lo, hi := c.store.txns, c.store.txns
	mustFail := false
	if w := c.wal; w != nil {
		switch {
		case !w.newest:
			mustFail = true
		case c.damage == "trunc":
			lo = w.firstTxn + w.complete(c.off)
			hi = lo
		case w.provedSynced(c.off, c.damageEnd()):
			mustFail = true
		default:
			lo = w.firstTxn + w.complete(c.off)
		}
	}
	d, err := Open(corrDir, corrOptions(fs, c.store.noSync))
	if err != nil {
		outcome, err := corrOpenErr(c, err)
		tally.add(kind, outcome)
		return err
	}
	defer d.Close()
	r, err := corrVerify(d, lo, hi)
	switch {
	case err != nil:
		return err
	case r.corrupt > 0:
		return fmt.Errorf("opened, then %d reads failed with ErrCorruption", r.corrupt)
	case r.k == c.store.txns:
		tally.add(kind, "open: all commits")
	case mustFail:
		return fmt.Errorf("opened with commits 0..%d of 0..%d: damage to synced bytes lost commits silently", r.k-1, c.store.txns-1)
	default:
		tally.add(kind, "open: torn tail dropped")
	}
	return nil
}

// corrOpenErr checks an Open error: it wraps ErrCorruption and names the
// damaged file. It returns the outcome to tally.
func corrOpenErr(c corrCase, err error) (string, error) {
	msg := err.Error()
	switch {
	case !errors.Is(err, ErrCorruption):
		return "open: other error", fmt.Errorf("Open failed without ErrCorruption: %v", err)
	case strings.Contains(msg, c.file):
		return "open: ErrCorruption", nil
	}
	return "open: ErrCorruption naming another file", fmt.Errorf("Open error does not name %s: %v", c.file, err)
}

// corrTableCase checks damage to a table: Check reports it, Open opens (or
// reports it), every read is right or reports it, and Compact reports it
// (when it reads the damaged bytes) or succeeds; either way every read is
// then right or reports it, after a reopen when Compact failed.
func corrTableCase(c corrCase, fs vfs.FS, kind string, tally *corrTally) error {
	if _, err := Check(corrDir, &Options{FS: fs}); !errors.Is(err, ErrCorruption) {
		return fmt.Errorf("Check did not report ErrCorruption: %v", err)
	}
	tally.add(kind, "check: ErrCorruption")
	d, err := Open(corrDir, corrOptions(fs, c.store.noSync))
	if err != nil {
		outcome, err := corrOpenErr(c, err)
		tally.add(kind, outcome)
		return err
	}
	defer func() { d.Close() }()
	tally.add(kind, "open: ok")
	n := c.store.txns
	r, err := corrVerify(d, n, n)
	if err != nil {
		return fmt.Errorf("reads before Compact: %w", err)
	}
	tally.add(kind, "reads: "+r.String())
	err = d.Compact()
	switch {
	case err != nil && !errors.Is(err, ErrCorruption):
		return fmt.Errorf("Compact failed without ErrCorruption: %v", err)
	case err != nil:
		// Nothing of the failed compaction may stay: reopened, the store
		// holds the damaged table, and every read is right or reports it.
		tally.add(kind, "compact: ErrCorruption")
		d.Close()
		if d, err = Open(corrDir, corrOptions(fs, c.store.noSync)); err != nil {
			return fmt.Errorf("reopening after the failed Compact: %v", err)
		}
	default:
		tally.add(kind, "compact: ok")
	}
	if r, err = corrVerify(d, n, n); err != nil {
		return fmt.Errorf("reads after Compact: %w", err)
	}
	tally.add(kind, "reads after compact: "+r.String())
	return nil
}

// corrResult is what corrVerify found.
type corrResult struct {
	k       int // commits the store holds
	corrupt int // reads that failed with ErrCorruption
}

func (r corrResult) String() string {
	if r.corrupt > 0 {
		return "some ErrCorruption"
	}
	return "all right"
}

// corrVerify reads the committed offset, which tells k, the number of
// commits the store holds (it must be in lo..hi), then every key with Get
// and the whole store forward and backward, against corrModels[k]. Every
// read must return the model's value or an error wrapping ErrCorruption.
// If the offset cannot be read, k = hi when lo == hi.
func corrVerify(d *DB, lo, hi int) (r corrResult, err error) {
	key := append(base.AppendNamespace(nil, base.EngineNamespace), corrOffset...)
	v, err := d.getCommitted(base.EngineNamespace, key, seqLatest)
	switch {
	case err == nil && len(v) == 8:
		r.k = int(binary.BigEndian.Uint64(v)) + 1
	case errors.Is(err, ErrCorruption) && lo == hi:
		r.k, r.corrupt = hi, 1
	case errors.Is(err, ErrNotFound):
		r.k = 0
	default:
		return r, fmt.Errorf("reading the committed offset: %q, %v", v, err)
	}
	if r.k < lo || r.k > hi {
		return r, fmt.Errorf("the store holds commits 0..%d, want 0..%d at least and 0..%d at most", r.k-1, lo-1, hi-1)
	}
	model := corrModels()[r.k]
	for i := range corrKeys {
		key := corrKey(i)
		got, err := d.Get([]byte(key))
		want, ok := model[key]
		switch {
		case err == nil && !ok:
			return r, fmt.Errorf("Get(%s) = %.20q..., want not found (%d commits)", key, got, r.k)
		case err == nil && string(got) != want:
			return r, fmt.Errorf("Get(%s) = %.20q..., want %.20q... (%d commits)", key, got, want, r.k)
		case errors.Is(err, ErrNotFound) && ok:
			return r, fmt.Errorf("Get(%s): not found, want %.20q... (%d commits)", key, want, r.k)
		case errors.Is(err, ErrCorruption):
			r.corrupt++
		case err != nil && !errors.Is(err, ErrNotFound):
			return r, fmt.Errorf("Get(%s): error without ErrCorruption: %v", key, err)
		}
	}
	for _, reverse := range []bool{false, true} {
		if err := corrScan(d, r.k, reverse, &r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// corrScan scans the store: every entry must be the model's, in order, and
// a scan that ends without an error must have seen them all; an older
// version (a value of an earlier commit, or a key deleted since) is wrong
// data even when the scan then reports ErrCorruption.
func corrScan(d *DB, k int, reverse bool, r *corrResult) error {
	model := corrModels()[k]
	it, err := d.NewIterator(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	what := "forward scan"
	first, next := it.First, it.Next
	if reverse {
		what, first, next = "backward scan", it.Last, it.Prev
	}
	seen := 0
	var prev []byte
	var wrong error
	for ok := first(); ok; ok = next() {
		key, value := it.Key(), it.Value()
		if prev != nil && (bytes.Compare(prev, key) >= 0) != reverse || bytes.Equal(prev, key) {
			return fmt.Errorf("%s returned %s after %s", what, key, prev)
		}
		prev = append(prev[:0], key...)
		if want, ok := model[string(key)]; ok && want == string(value) {
			seen++
			continue
		}
		if !corrOlderVersion(k, string(key), value) {
			return fmt.Errorf("%s returned %s = %.20q..., which no commit wrote", what, key, value)
		}
		if wrong == nil {
			wrong = fmt.Errorf("%s returned %s = %.20q..., an older version (want %.20q...)", what, key, value, model[string(key)])
		}
	}
	err = it.Close()
	switch {
	case err != nil && !errors.Is(err, ErrCorruption):
		return fmt.Errorf("%s: error without ErrCorruption: %v", what, err)
	case wrong != nil && err != nil:
		return fmt.Errorf("%w, then %v", wrong, err)
	case wrong != nil:
		return wrong
	case err == nil && seen != len(model):
		return fmt.Errorf("%s returned %d of %d entries and no error", what, seen, len(model))
	case err != nil:
		r.corrupt++
	}
	return nil
}

// corrOlderVersion reports whether value is a value key held before
// commit k.
func corrOlderVersion(k int, key string, value []byte) bool {
	for _, m := range corrModels()[:k] {
		if v, ok := m[key]; ok && v == string(value) {
			return true
		}
	}
	return false
}
