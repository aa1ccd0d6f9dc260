package lsm

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
)

// The runner of the model test: each run goes on a goroutine of its own
// reporting to a modelTrial, so that a failure, or a panic of the engine
// on that goroutine, ends the run without failing the test. A failing run
// is shrunk: runs of the same option set and seed cut to fewer steps (the
// operations do not depend on what the store answers, so a shorter run
// replays a prefix of the longer one) find, by bisection, the shortest
// that still fails. Shortest failing runs go to modelRegressions.

var modelStepsFlag = flag.Int("model.steps", 0,
	"steps of each option set of TestRandomizedAgainstModel (0 = 3000, or 1500 for the table-heavy sets)")

var modelSkippedFlag = flag.Bool("model.skipped", false, "run the skipped entries of modelRegressions too")

var modelTraceFlag = flag.Bool("model.trace", false, "log the writes, commits and namespace operations of TestRandomizedAgainstModel")

// trace logs an operation with -model.trace.
func (r *modelRun) trace(format string, args ...any) {
	if *modelTraceFlag {
		r.t.Logf(format, args...)
	}
}

// modelRegressions are runs of TestRandomizedAgainstModel replayed by
// every go test: an option set (its name in modelConfigs), a seed and a
// number of steps, as the shrinker reports them. Runs that found engine
// bugs stay here; one whose bug is open is skipped, with skip saying why
// (-model.skipped runs them, to see whether the bug is fixed). The first
// entries are representative runs that keep the mechanism exercised
// (namespaces created, written and dropped, power cuts with commits lost
// in NoSync mode, and every commit kept otherwise).
var modelRegressions = []struct {
	set   string
	seed  uint64
	steps int
	skip  string
}{
	{set: "nosync-small", seed: 1, steps: 400},
	{set: "tables-manifest-rolls", seed: 2, steps: 300},
	// After memtable rotations, a namespace edit lost the commits of every
	// in-memory memtable but the active one (fixed).
	{set: "in-memory", seed: 11, steps: 23},
}

// TestRandomizedAgainstModel runs seeded random operations on the lsm API
// under several option sets and checks every read against a map model:
// transactions over several namespaces and offsets, the three kinds of
// readers, snapshots and iterators kept open across flushes, compactions,
// commits and namespace drops, namespaces created and dropped, reopens
// and simulated power cuts. A failure is shrunk to the shortest failing
// run, which the message gives as a modelRegressions entry.
func TestRandomizedAgainstModel(t *testing.T) {
	seed := testSeed(t)
	for i, c := range modelConfigs() {
		t.Run(c.name, func(t *testing.T) {
			res := runModel(t, i, seed, modelSteps(c), false)
			if res.failure != "" {
				t.Fatalf("%s\n%s", res.failure, shrinkModel(t, i, seed, res))
			}
			res.r.checkCoverage(t, c, res.steps)
		})
	}
}

// TestModelRegressions replays modelRegressions.
func TestModelRegressions(t *testing.T) {
	for _, reg := range modelRegressions {
		t.Run(fmt.Sprintf("%s/seed=%d/steps=%d", reg.set, reg.seed, reg.steps), func(t *testing.T) {
			set := modelSetIndex(reg.set)
			if set < 0 {
				t.Fatalf("no option set %q", reg.set)
			}
			if reg.skip != "" && !*modelSkippedFlag {
				t.Skip(reg.skip)
			}
			res := runModel(t, set, reg.seed, reg.steps, false)
			if res.failure != "" {
				t.Fatalf("step %d: %s", res.step, res.failure)
			}
			tot := res.r.totals
			t.Logf("%d namespaces created, %d dropped; %d power cuts lost %d commits", tot.created, tot.dropped, tot.crashes, tot.lost)
		})
	}
}

// modelSetIndex returns the index of the option set called name in
// modelConfigs, or -1.
func modelSetIndex(name string) int {
	for i, c := range modelConfigs() {
		if c.name == name {
			return i
		}
	}
	return -1
}

// modelSteps returns how many steps TestRandomizedAgainstModel runs with c.
func modelSteps(c modelConfig) int {
	if *modelStepsFlag > 0 {
		return *modelStepsFlag
	}
	steps := 3000
	if testing.Short() {
		steps = 800
	}
	if c.tables {
		steps /= 2 // as many bytes as the other sets' steps write, and more
	}
	return steps
}

// modelTrial is the modelTB of a run: Fatal records the failure and ends
// the run's goroutine; Logf logs to the test unless the run is quiet.
type modelTrial struct {
	t        *testing.T
	quiet    bool
	failure  string
	cleanups []func()
}

func (p *modelTrial) Helper() {}

func (p *modelTrial) Logf(format string, args ...any) {
	if !p.quiet {
		p.t.Logf(format, args...)
	}
}

func (p *modelTrial) Fatal(args ...any) { p.fail(fmt.Sprint(args...)) }

func (p *modelTrial) Fatalf(format string, args ...any) { p.fail(fmt.Sprintf(format, args...)) }

func (p *modelTrial) Cleanup(f func()) { p.cleanups = append(p.cleanups, f) }

func (p *modelTrial) fail(msg string) {
	p.failure = msg
	runtime.Goexit()
}

// modelResult is the outcome of a run.
type modelResult struct {
	r       *modelRun
	steps   int    // the steps asked for
	step    int    // the step that failed (steps: the final check)
	failure string // empty if the run passed
}

// runModel runs steps random operations of option set number set of
// modelConfigs with seed, then checks the whole store. Quiet runs log
// nothing.
func runModel(t *testing.T, set int, seed uint64, steps int, quiet bool) modelResult {
	p := &modelTrial{t: t, quiet: quiet}
	res := modelResult{steps: steps}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if e := recover(); e != nil {
				p.failure = fmt.Sprintf("panic: %v\n%s", e, debug.Stack())
			}
		}()
		defer func() {
			for i := len(p.cleanups) - 1; i >= 0; i-- {
				p.cleanups[i]()
			}
		}()
		res.r = newModelRun(p, modelConfigs()[set], set, seed)
		r := res.r
		r.db = r.open()
		for ; res.step < steps; res.step++ {
			r.step(res.step)
		}
		r.checkAll("end")
		r.noteLevels()
		r.collect()
	}()
	<-done
	res.failure = p.failure
	return res
}

// newModelRun returns a run of option set c (number set) with seed, on a
// new MemFS unless c keeps the store in memory.
func newModelRun(t modelTB, c modelConfig, set int, seed uint64) *modelRun {
	opts := c.opts
	r := &modelRun{t: t, rng: rand.New(rand.NewPCG(seed, uint64(set))), dir: "db", opts: &opts, keys: 300, m: newModel()}
	if !opts.InMemory {
		r.mem = vfs.NewMem()
		opts.FS = r.mem
	}
	if c.tables {
		r.keys, r.medium = 500, true
	}
	return r
}

// shrinkModel finds, by bisection on the number of steps, the shortest run
// of the failed run's option set and seed that fails too, and describes
// it. A run of n steps that fails at step k < n shows that k+1 steps
// are enough. Runs are taken at their word: a failure that depends on
// timing may shrink less well, or not reproduce.
func shrinkModel(t *testing.T, set int, seed uint64, failed modelResult) string {
	name := modelConfigs()[set].name
	lo, hi := 0, min(failed.step+1, failed.steps)
	last := runModel(t, set, seed, hi, true)
	if last.failure == "" {
		return fmt.Sprintf("shrinking: a run of %d steps passes (set %s, seed %d): the failure depends on timing", hi, name, seed)
	}
	hi = min(hi, last.step+1)
	for lo+1 < hi {
		mid := lo + (hi-lo)/2
		if res := runModel(t, set, seed, mid, true); res.failure != "" {
			// A run failing before its last step shows that the steps up
			// to the failing one are enough.
			hi, last = min(mid, res.step+1), res
		} else {
			lo = mid
		}
	}
	return fmt.Sprintf("shortest failing run: set %s, seed %d, %d steps (failing at step %d): %s\n"+
		"replay: go test ./lsm -run 'TestRandomizedAgainstModel/%s$' -seed=%d -model.steps=%d\n"+
		"modelRegressions entry: {set: %q, seed: %d, steps: %d},",
		name, seed, hi, last.step, last.failure, name, seed, hi, name, seed, hi)
}

// checkCoverage fails the test if the run did not exercise what its option
// set is for: tables deep in the tree, compactions, manifest rolls, and in
// every set namespaces, commits spanning them, and power cuts. Short runs
// are exempt.
func (r *modelRun) checkCoverage(t *testing.T, c modelConfig, steps int) {
	tot := r.totals
	t.Logf("deepest level holding tables L%d; %d flushes, %d compactions, %d manifest rolls; "+
		"%d namespaces created, %d dropped, %d commits spanning namespaces and offsets; %d power cuts lost %d commits",
		r.deepest, tot.flushes, tot.compactions, tot.rolls, tot.created, tot.dropped, tot.spanning, tot.crashes, tot.lost)
	if steps < 1000 || testing.Short() {
		return
	}
	if tot.created == 0 || tot.dropped == 0 || tot.spanning == 0 {
		t.Errorf("the run created, dropped or committed across no namespace")
	}
	if r.mem != nil && tot.crashes == 0 {
		t.Errorf("the run simulated no power cut")
	}
	if r.opts.InMemory {
		return
	}
	if tot.flushes == 0 || tot.compactions == 0 {
		t.Errorf("the run made no flush or no compaction")
	}
	if c.tables && !c.opts.DisableAutomaticCompactions && r.deepest < 3 {
		t.Errorf("data never reached level 3: the option set no longer exercises deep levels")
	}
	if c.opts.MaxManifestFileSize > 0 && c.opts.MaxManifestFileSize < 4<<10 && tot.rolls == 0 {
		t.Errorf("no manifest roll with MaxManifestFileSize %d", c.opts.MaxManifestFileSize)
	}
}
