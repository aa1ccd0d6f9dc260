package lsm

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratadb/strata/internal/testseed"
	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/manifest"
)

// corrExhaustive makes TestCorruption damage every byte of the WAL files
// instead of every header byte, the bytes around every record end and a
// stride through the payloads, and flip at least 10,000 table bits.
var corrExhaustive = flag.Bool("corruption.exhaustive", false,
	"TestCorruption: damage every byte of the WAL files and flip 10,000 table bits (TESTPLAN's nightly size; minutes)")

// corrTableFlips is how many bits TestCorruption flips over the tables,
// in as many strata of their bytes.
var corrTableFlips = flag.Int("corruption.tableflips", 300,
	"TestCorruption: random bit flips over the tables (at least 10,000 with -corruption.exhaustive)")

// corrCase is one damage to one file of a store.
type corrCase struct {
	store  *corrStore
	kind   string // what the tally groups it under
	file   string
	damage string // flip, zero16, trunc, swap, copy or twin
	off    int64
	bit    uint
	// swap: the bytes [off, off+n) and [off2, off2+n2) change places (off+n
	// <= off2; bytes between move by n2-n). copy: the bytes [off, off+n) of
	// file src are written over the same bytes of file. twin: the table's
	// block of n stored bytes at off gets the checksum it would have in a
	// table numbered fileNum (the block a twin of the table, with the same
	// contents but that number, holds there).
	n, off2, n2 int64
	src         string
	fileNum     uint64
	wal         *corrWAL // for WAL damage
}

func (c corrCase) String() string {
	s := fmt.Sprintf("store %s, %s %s: %s at offset %d", c.store.name, c.kind, c.file, c.damage, c.off)
	switch c.damage {
	case "flip":
		s += fmt.Sprintf(" (bit %d)", c.bit)
	case "swap":
		s += fmt.Sprintf(" (%d bytes) with offset %d (%d bytes)", c.n, c.off2, c.n2)
	case "copy":
		s += fmt.Sprintf(" (%d bytes) from %s", c.n, c.src)
	case "twin":
		s += fmt.Sprintf(" (block of %d bytes) as table %d has it", c.n, c.fileNum)
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
	case "swap":
		return c.off2 + c.n2
	case "copy":
		return c.off + c.n
	case "twin":
		return c.off + c.n + 5
	}
	return int64(len(c.store.files[c.file]))
}

// damaged returns the store's files with the damage applied.
func (c corrCase) damaged() map[string][]byte {
	files := maps.Clone(c.store.files)
	b := slices.Clone(c.store.files[c.file])
	switch c.damage {
	case "flip":
		b[c.off] ^= 1 << c.bit
	case "zero16":
		clear(b[c.off:min(c.off+16, int64(len(b)))])
	case "trunc":
		b = b[:c.off]
	case "swap":
		a, z := b[c.off:c.off+c.n], b[c.off2:c.off2+c.n2]
		b = slices.Concat(b[:c.off], z, b[c.off+c.n:c.off2], a, b[c.off2+c.n2:])
	case "copy":
		copy(b[c.off:c.off+c.n], c.store.files[c.src][c.off:])
	case "twin":
		crc := crc32.Checksum(b[c.off:c.off+c.n], corrCastagnoli)
		binary.LittleEndian.PutUint32(b[c.off+c.n+1:], corrBlockCRC(crc, b[c.off+c.n], c.fileNum, uint64(c.off)))
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
//     strata of their bytes (so every block gets some; -corruption.tableflips
//     sets the number, 10,000 with -corruption.exhaustive), 6 more in each
//     of the index, filter and properties blocks and the footer of each
//     table, and 12 truncations per table (at 0, in and before the footer,
//     and spread);
//   - block swaps (damage "swap", "copy", "twin"): every two blocks of each
//     table of A swapped, each block of each table copied into each other
//     table at the same offset, and each block given the checksum of a twin
//     table under another file number (corrTableSwapCases); every two
//     32 KiB blocks of each WAL file of A and B swapped, and each block
//     copied into each other WAL file of the store (corrWALSwapCases);
//     the damaged bytes run from the first byte moved to the last.
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
	cases = append(cases, corrWALSwapCases(a)...)
	cases = append(cases, corrWALSwapCases(b)...)
	swaps, err := corrTableSwapCases(a)
	if err != nil {
		t.Fatal(err)
	}
	cases = append(cases, swaps...)
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
	flips := 0
	for _, c := range cases {
		if c.damage == "flip" && strings.HasPrefix(c.kind, "table") {
			flips++
		}
	}
	t.Logf("store A: %s; store B: %s; WAL damage at %s; %d table bit flips (-corruption.tableflips=%d stratified, 6 more per part); %d cases by file kind and outcome:%s",
		corrDescribe(a), corrDescribe(b), sampled, flips, corrTableFlipCount(), len(cases), &tally)
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
	kind := corrWALKind(s, w)
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

// corrWALKind is what the tally calls damage to WAL file w of store s.
func corrWALKind(s *corrStore, w *corrWAL) string {
	switch {
	case w.newest && s.noSync:
		return "WAL newest, NoSync"
	case w.newest:
		return "WAL newest, synced"
	}
	return "WAL older"
}

// corrWALSwapCases swaps every two 32 KiB blocks of each WAL file of s:
// the first n bytes of each, n the shorter block's length (whole blocks
// when neither is the partial last one), so that both stay at block
// edges. It also copies each block of each WAL file over the block at the
// same offset of each other one (its first n bytes, the same n), the
// misdirected write of another log's block.
func corrWALSwapCases(s *corrStore) []corrCase {
	var cases []corrCase
	for _, w := range s.wals {
		kind, blocks := corrWALKind(s, w), corrWALBlocks(int64(len(s.files[w.name])))
		for i, x := range blocks {
			for _, y := range blocks[i+1:] {
				n := min(x.n, y.n)
				cases = append(cases, corrCase{store: s, kind: kind, file: w.name, damage: "swap",
					off: x.off, n: n, off2: y.off, n2: n, wal: w})
			}
		}
		for _, src := range s.wals {
			if src == w {
				continue
			}
			for i, x := range corrWALBlocks(int64(len(s.files[src.name]))) {
				if i < len(blocks) {
					cases = append(cases, corrCase{store: s, kind: kind, file: w.name, damage: "copy",
						off: x.off, n: min(x.n, blocks[i].n), src: src.name, wal: w})
				}
			}
		}
	}
	return cases
}

// corrTableSwapCases swaps every two blocks of each table of s, all parts
// (data, filter, properties, index): their bytes with their trailers
// change places, and when their lengths differ the blocks between them
// move by the difference (the size of the file is kept). It copies each
// block of each table, with its trailer, over the same bytes of each
// other table whose size allows (a misdirected write; the copy may cover
// several of its blocks or part of one). And it gives each block of each
// table the checksum it has in a twin table, one with the same contents
// and the number of the next table of s: the block copied from that twin
// at the same offset, the same bytes but for the file number its checksum
// covers.
func corrTableSwapCases(s *corrStore) ([]corrCase, error) {
	names := slices.Sorted(maps.Keys(s.levels))
	blocks := map[string][]corrBlock{}
	for _, n := range names {
		var err error
		if blocks[n], err = corrTableBlocks(s.files[n]); err != nil {
			return nil, fmt.Errorf("store %s, %s: %v", s.name, n, err)
		}
	}
	var cases []corrCase
	for k, name := range names {
		kind, size := fmt.Sprintf("table L%d", s.levels[name]), int64(len(s.files[name]))
		twin := corrTableFileNum(s.files[names[(k+1)%len(names)]])
		if twin == corrTableFileNum(s.files[name]) { // s has one table
			twin++
		}
		for i, x := range blocks[name] {
			for _, y := range blocks[name][i+1:] {
				cases = append(cases, corrCase{store: s, kind: kind, file: name, damage: "swap",
					off: x.off, n: x.end() - x.off, off2: y.off, n2: y.end() - y.off})
			}
			cases = append(cases, corrCase{store: s, kind: kind, file: name, damage: "twin", off: x.off, n: x.n, fileNum: twin})
		}
		for _, src := range names {
			for _, x := range blocks[src] {
				if src != name && x.end() <= size {
					cases = append(cases, corrCase{store: s, kind: kind, file: name, damage: "copy",
						off: x.off, n: x.end() - x.off, src: src})
				}
			}
		}
	}
	return cases, nil
}

// corrTableFlipCount is how many bits corrTableCases flips over the
// tables: -corruption.tableflips, at least 10,000 with
// -corruption.exhaustive (TESTPLAN's nightly figure).
func corrTableFlipCount() int {
	if *corrExhaustive {
		return max(*corrTableFlips, 10000)
	}
	return *corrTableFlips
}

// corrTableCases flips a random bit at corrTableFlipCount positions
// spread over the tables (one per stratum of their bytes, so every block
// gets some; 300 by default), and
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
	flips := int64(corrTableFlipCount())
	const partFlips, truncs = 6, 12
	var cases []corrCase
	done := int64(0) // bytes of the tables before n
	for _, n := range names {
		size := int64(len(s.files[n]))
		kind := fmt.Sprintf("table L%d", s.levels[n])
		k := min(max(1, flips*(done+size)/total-flips*done/total), size) // strata of at least a byte
		done += size
		for i := range k {
			lo, hi := i*size/k, (i+1)*size/k
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
