package lsm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/internal/vfs/errorfs"
	"github.com/stratadb/strata/manifest"
)

// The scripted fault workload, shared by TestErrorInjection and
// TestPowerCut: partitions commit their transactions (see faultPartition)
// in phases, and between phases the store is flushed, closed and reopened,
// and compacted, so that besides commits and memtable rotations the
// workload flushes memtables into level-0 tables, compacts into level 2,
// deletes obsolete tables and WALs, and rolls the manifest (faultOptions
// make all of them frequent).

// faultStep is what the workload does after a phase of commits.
type faultStep int

const (
	faultFlush faultStep = iota
	faultReopen
	faultCompact
	faultClose
)

func (s faultStep) String() string {
	return [...]string{"Flush", "reopen", "Compact", "Close"}[s]
}

// faultPhase is a phase of the workload: it commits the transactions of
// every partition below until, then takes its step.
type faultPhase struct {
	until int
	step  faultStep
}

// faultPlan returns the phases of a workload of txns transactions per
// partition.
func faultPlan(txns int) []faultPhase {
	return []faultPhase{{txns / 3, faultFlush}, {txns / 2, faultReopen}, {2 * txns / 3, faultCompact}, {txns, faultClose}}
}

// faultOptions make memtables rotate (new WAL files) and flush, level 0
// compact at two tables, level 1 overflow into level 2, and the manifest
// roll every few edits. A nil logger is silent.
func faultOptions(fs vfs.FS, cfg faultConfig, logger *slog.Logger) *Options {
	return &Options{
		FS:                    fs,
		NoSync:                cfg.noSync,
		MemTableSize:          64 << 10,
		L0CompactionThreshold: 2,
		TargetFileSize:        2 << 10,
		LevelBaseBytes:        4 << 10,
		MaxManifestFileSize:   512,
		Logger:                logger,
	}
}

// faultRun is one run of the workload.
type faultRun struct {
	fs  vfs.FS
	cfg faultConfig
	// onAck, if not nil, is called after each acknowledged commit (from
	// the partition's goroutine), and onDurable, if not nil, after each
	// Flush, Compact or Close that returned nil, with the last acknowledged
	// transaction of each partition: all of them are durable then.
	onAck     func(p, s int)
	onDurable func(acked []int)

	// acked is the last acknowledged transaction of each partition (-1 if
	// none); it is read once the run has returned.
	acked []int
	// log is the event counter of the DB open now (see faultLog), logs
	// those of every DB opened.
	log  atomic.Pointer[faultLog]
	logs []*faultLog
	// stats are kept unless noStats: Metrics reads the committed offsets,
	// from tables once flushed, and cannot report a failed read.
	stats   faultStats
	noStats bool
	// failedIn names what returned the error that stopped the run:
	// "commit", "Flush", "Compact", "Close" or "Open".
	failedIn string
}

// faultStats sums what the Metrics of the run's DBs report just before
// each Close, so that the test can check the workload did what it is for.
type faultStats struct {
	opens, flushes, compactions, rolls, tablesDeleted int64
	deepest                                           int // the deepest level that held tables
}

// exercised reports whether the DBs flushed, compacted down to level 2,
// deleted tables and rolled the manifest.
func (s faultStats) exercised() bool {
	return s.flushes > 0 && s.compactions > 0 && s.deepest >= 2 && s.rolls > 0 && s.tablesDeleted > 0
}

// merge adds the counts of o to s.
func (s *faultStats) merge(o faultStats) {
	s.opens += o.opens
	s.flushes += o.flushes
	s.compactions += o.compactions
	s.rolls += o.rolls
	s.tablesDeleted += o.tablesDeleted
	s.deepest = max(s.deepest, o.deepest)
}

func (s faultStats) String() string {
	return fmt.Sprintf("%d opens, %d flushes, %d compactions (down to L%d), %d manifest rolls, %d tables deleted",
		s.opens, s.flushes, s.compactions, s.deepest, s.rolls, s.tablesDeleted)
}

// addStats records the metrics of db, unless r.noStats: its counters if
// it is about to close, else only the deepest level holding tables.
func (r *faultRun) addStats(db *DB, closing bool) {
	if r.noStats {
		return
	}
	m := db.Metrics()
	if closing {
		r.stats.flushes += m.Flushes
		r.stats.compactions += m.Compactions
		r.stats.rolls += m.ManifestRolls
		r.stats.tablesDeleted += m.TablesDeleted
	}
	for level, l := range m.Levels {
		if l.Tables > 0 {
			r.stats.deepest = max(r.stats.deepest, level)
		}
	}
}

// newFaultRun returns a run of the workload on fs.
func newFaultRun(fs vfs.FS, cfg faultConfig) *faultRun {
	r := &faultRun{fs: fs, cfg: cfg, acked: make([]int, cfg.parts)}
	for p := range r.acked {
		r.acked[p] = -1
	}
	return r
}

// run runs the workload until it ends or fails, and returns the errors
// that stopped it: from Open, a commit, Flush, Compact or Close.
func (r *faultRun) run() error {
	db, err := r.open()
	if err != nil {
		r.failedIn = "Open"
		return err
	}
	lo := 0
	for _, ph := range faultPlan(r.cfg.txns) {
		if err := r.commitPhase(db, lo, ph.until); err != nil {
			r.failedIn = "commit"
			return errors.Join(err, db.Close())
		}
		lo = ph.until
		switch ph.step {
		case faultFlush, faultCompact:
			if err := r.stepOn(db, ph.step); err != nil {
				r.failedIn = ph.step.String()
				return errors.Join(err, db.Close())
			}
		case faultReopen, faultClose:
			if err := r.close(db); err != nil {
				r.failedIn = "Close"
				return err
			}
			if ph.step == faultClose {
				return nil
			}
			if db, err = r.open(); err != nil {
				r.failedIn = "Open"
				return err
			}
		}
	}
	panic("unreachable: the plan ends with Close")
}

// open opens the store with a new event counter.
func (r *faultRun) open() (*DB, error) {
	l := &faultLog{}
	r.log.Store(l)
	r.logs = append(r.logs, l)
	r.stats.opens++
	return Open("db", faultOptions(r.fs, r.cfg, slog.New(l)))
}

// close closes db, recording its metrics first.
func (r *faultRun) close(db *DB) error {
	r.addStats(db, true)
	if err := db.Close(); err != nil {
		return err
	}
	r.durable()
	return nil
}

// durable calls onDurable.
func (r *faultRun) durable() {
	if r.onDurable != nil {
		r.onDurable(r.acked)
	}
}

// stepOn runs a Flush or Compact step. After a failure the store must
// refuse writes.
func (r *faultRun) stepOn(db *DB, step faultStep) error {
	var err error
	if step == faultFlush {
		err = db.Flush()
	} else {
		r.addStats(db, false) // before Compact moves everything to the deepest level
		err = db.Compact()
	}
	if err != nil {
		return errors.Join(fmt.Errorf("%s: %w", step, err), refusesWrites(db, step.String()))
	}
	r.durable()
	return nil
}

// events returns the messages the run's DBs logged, each DB's after a
// line "Open".
func (r *faultRun) events() string {
	var b strings.Builder
	for _, l := range r.logs {
		fmt.Fprintf(&b, "\nOpen\n%s", l)
	}
	return b.String()
}

// refusesWrites returns an error if db takes a write after what failed.
func refusesWrites(db *DB, what string) error {
	if err := db.Set([]byte("x"), nil); !errors.Is(err, ErrReadOnly) {
		return fmt.Errorf("after the failed %s, a write returned %v, want ErrReadOnly", what, err)
	}
	return nil
}

// commitPhase commits transactions [lo, hi) of every partition, each
// partition from a goroutine of its own.
func (r *faultRun) commitPhase(db *DB, lo, hi int) error {
	errs := make([]error, r.cfg.parts)
	var wg sync.WaitGroup
	for p := range r.cfg.parts {
		wg.Go(func() {
			errs[p] = faultPartition(db, p, lo, hi, func(s int) {
				r.acked[p] = s
				if r.onAck != nil {
					r.onAck(p, s)
				}
			})
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// faultPartition commits partition p's transactions [lo, hi) of the
// workload. After a failure the store must refuse writes.
func faultPartition(db *DB, p, lo, hi int, ack func(s int)) error {
	for s := lo; s < hi; s++ {
		if err := workloadCommit(db, p, s, workloadRollsBack(p, s), nil); err != nil {
			return errors.Join(err, refusesWrites(db, "commit"))
		}
		ack(s)
	}
	return nil
}

// verifyFaultStore opens the store on fs and checks that each partition
// holds exactly the transactions up to its committed offset, and at least
// up to acked. It then flushes what the WALs held and checks that the
// directory holds no file the store does not use: every table is live and
// there is one manifest (Open removes what failed or crashed removals left).
func verifyFaultStore(fs vfs.FS, cfg faultConfig, acked []int) error {
	o := faultOptions(fs, cfg, nil)
	o.DisableAutomaticCompactions = true
	db, err := Open("db", o)
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	err = checkFaultData(db, cfg, acked)
	if err == nil {
		err = checkFaultFiles(fs, db)
	}
	return errors.Join(err, db.Close())
}

// checkFaultData checks the store against the workload: each partition
// holds exactly its transactions up to its committed offset, which is at
// least acked.
func checkFaultData(db *DB, cfg faultConfig, acked []int) error {
	last := make([]int, cfg.parts)
	for p := range last {
		last[p] = cfg.txns - 1
	}
	_, err := checkWorkload(db, cfg.parts, acked, last)
	return err
}

// checkFaultFiles flushes db (opened without automatic compactions) and
// checks that the directory holds exactly its live tables and one
// manifest, and no WAL but the active one and the one flushed last.
func checkFaultFiles(fs vfs.FS, db *DB) error {
	if err := db.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	m := db.Metrics()
	live := 0
	for _, l := range m.Levels {
		live += l.Tables
	}
	names, err := fs.List("db")
	if err != nil {
		return err
	}
	var tables, manifests, logs []string
	for _, name := range names {
		switch {
		case strings.HasSuffix(name, tableSuffix):
			tables = append(tables, name)
		case strings.HasSuffix(name, logSuffix):
			logs = append(logs, name)
		case strings.HasPrefix(name, "MANIFEST"):
			manifests = append(manifests, name)
		}
	}
	switch {
	case len(tables) != live:
		return fmt.Errorf("the directory holds %d tables %v, the store uses %d", len(tables), tables, live)
	case !slices.Equal(manifests, []string{manifest.FileName(m.ManifestNumber)}):
		return fmt.Errorf("the directory holds the manifests %v, the store uses %s", manifests, manifest.FileName(m.ManifestNumber))
	case len(logs) > 2:
		return fmt.Errorf("the directory holds the WALs %v after a flush", logs)
	}
	return nil
}

// faultLog is a slog.Handler that counts the compactions a DB logs, so
// that the test can tell whether a compaction that hit an injected read
// error was abandoned by Close (nothing logged afterwards) or went on, and
// keeps the messages for failure reports.
type faultLog struct {
	compactions atomic.Int64
	mu          sync.Mutex
	lines       []string
}

func (h *faultLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *faultLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "compacted" {
		h.compactions.Add(1)
	}
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	h.lines = append(h.lines, b.String())
	h.mu.Unlock()
	return nil
}

// String returns the messages logged, one a line.
func (h *faultLog) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.lines, "\n")
}

func (h *faultLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *faultLog) WithGroup(string) slog.Handler      { return h }

// faultFileKind names the kind of file an op touched, for the coverage
// report: "sst", "log", "MANIFEST", "CURRENT" (and CURRENT.tmp), "LOCK" or
// "dir".
func faultFileKind(p string) string {
	base := path.Base(strings.ReplaceAll(p, "\\", "/"))
	switch {
	case strings.HasSuffix(base, tableSuffix):
		return "sst"
	case strings.HasSuffix(base, logSuffix):
		return "log"
	case strings.HasPrefix(base, "MANIFEST"):
		return "MANIFEST"
	case strings.HasPrefix(base, manifest.CurrentName):
		return "CURRENT"
	case base == lockFileName:
		return "LOCK"
	}
	return "dir"
}

// faultCoverage counts, per file kind and op kind, the runs whose injected
// error hit such an op, and how many of them the store did not report
// (allowed for the ops quietlyFailable lists).
type faultCoverage struct {
	hits, quiet map[faultTarget]int
	// failedIn counts the runs whose error each of commit, Flush,
	// Compact, Close and Open returned.
	failedIn map[string]int
}

type faultTarget struct {
	file string
	kind errorfs.OpKind
}

func newFaultCoverage() *faultCoverage {
	return &faultCoverage{hits: map[faultTarget]int{}, quiet: map[faultTarget]int{}, failedIn: map[string]int{}}
}

// add records a run whose injected error hit op and was returned by
// failedIn ("" if none).
func (c *faultCoverage) add(op errorfs.Op, failedIn string) {
	t := faultTargetOf(op)
	c.hits[t]++
	if failedIn == "" {
		c.quiet[t]++
	} else {
		c.failedIn[failedIn]++
	}
}

// faultRequired are the ops the injected errors must hit at least once.
var faultRequired = []faultTarget{
	{"sst", errorfs.OpCreate}, {"sst", errorfs.OpWrite}, {"sst", errorfs.OpSync}, {"sst", errorfs.OpClose},
	{"sst", errorfs.OpRead}, {"sst", errorfs.OpRemove},
	{"log", errorfs.OpCreate}, {"log", errorfs.OpWrite}, {"log", errorfs.OpSync}, {"log", errorfs.OpRemove},
	{"MANIFEST", errorfs.OpCreate}, {"MANIFEST", errorfs.OpWrite}, {"MANIFEST", errorfs.OpSync},
	{"MANIFEST", errorfs.OpRemove},
	{"CURRENT", errorfs.OpCreate}, {"CURRENT", errorfs.OpRename},
	{"dir", errorfs.OpDirSync},
}

// missing returns the required ops no injected error hit.
func (c *faultCoverage) missing() []string {
	var m []string
	for _, t := range faultRequired {
		if c.hits[t] == 0 {
			m = append(m, t.file+" "+t.kind.String())
		}
	}
	return m
}

// String formats the coverage as one line per file kind: "sst: create 12,
// write 30 (2 quiet), ...".
func (c *faultCoverage) String() string {
	var b strings.Builder
	for _, file := range []string{"sst", "log", "MANIFEST", "CURRENT", "LOCK", "dir"} {
		var parts []string
		for kind := range errorfs.OpKind(errorfs.OpLock + 1) {
			t := faultTarget{file, kind}
			if n := c.hits[t]; n > 0 {
				s := fmt.Sprintf("%s %d", kind, n)
				if q := c.quiet[t]; q > 0 {
					s += fmt.Sprintf(" (%d quiet)", q)
				}
				parts = append(parts, s)
			}
		}
		fmt.Fprintf(&b, "\n  %-8s %s", file+":", strings.Join(parts, ", "))
	}
	b.WriteString("\n  errors returned by:")
	for _, in := range []string{"commit", "Flush", "Compact", "Close", "Open"} {
		fmt.Fprintf(&b, " %s %d", in, c.failedIn[in])
	}
	return b.String()
}

// faultTargetOf returns the kind of op and file of op.
func faultTargetOf(op errorfs.Op) faultTarget { return faultTarget{faultFileKind(op.Path), op.Kind} }

// faultCensus runs the workload with cfg and no fault and counts its ops
// of each kind, until a run exercises the whole LSM (see exercised) or
// tries runs did. The background compactions that reach level 2 lag on a
// busy machine, most with NoSync.
func faultCensus(t *testing.T, cfg faultConfig, tries int) (map[faultTarget]int, faultStats) {
	t.Helper()
	for try := 1; ; try++ {
		var mu sync.Mutex
		census := map[faultTarget]int{}
		fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
			mu.Lock()
			census[faultTargetOf(op)]++
			mu.Unlock()
			return nil
		}))
		r := newFaultRun(fs, cfg)
		if err := r.run(); err != nil {
			t.Fatal(err)
		}
		if r.stats.exercised() || try == tries {
			return census, r.stats
		}
	}
}

// faultOps returns the number of ops a census counted.
func faultOps(census map[faultTarget]int) int {
	n := 0
	for _, c := range census {
		n += c
	}
	return n
}

// sortedTargets returns the kinds of op a census counted, in a fixed order.
func sortedTargets(census map[faultTarget]int) []faultTarget {
	ts := slices.Collect(maps.Keys(census))
	slices.SortFunc(ts, func(a, b faultTarget) int {
		return cmp.Or(strings.Compare(a.file, b.file), cmp.Compare(a.kind, b.kind))
	})
	return ts
}

// faultPicks returns which of the n ops of a kind to fail or cut the power
// before: k of them evenly spaced from a random start, or all of them if
// n <= k or with -fault.exhaustive.
func faultPicks(n, k int, rng *rand.Rand) []int {
	if *faultExhaustive || n <= k {
		k = n
	}
	u := rng.Float64()
	picks := make([]int, k)
	for j := range picks {
		picks[j] = int((float64(j) + u) * float64(n) / float64(k))
	}
	return picks
}
