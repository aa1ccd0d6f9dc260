//go:build unix && strata_failpoints

package lsm

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stratadb/strata/internal/failpoint"
)

// TestCrashFailpoints is TESTPLAN S1 mode (b): a child process runs the
// crash workload of TestCrashSIGKILL with one failpoint armed at a random
// hit, so that the SIGKILL lands at that exact step of commit, WAL
// rotation, flush, manifest append or roll, compaction, file deletion,
// recovery or Close; the parent then checks the store exactly as
// TestCrashSIGKILL does, and the next cycle continues on the same
// directory. In about one cycle in five the reopen itself first runs in a
// child with a recovery failpoint armed (a double crash, TESTPLAN F8), and
// a clean reopen must then pass.

var failpointCycles = flag.Int("failpoint.cycles", 4, "cycles per failpoint of TestCrashFailpoints")

const (
	fpRoleEnv  = "STRATA_FP_CHILD" // "work" or "verify"
	fpDirEnv   = "STRATA_FP_DIR"
	fpSeedEnv  = "STRATA_FP_SEED"
	fpSyncEnv  = "STRATA_FP_NOSYNC"
	fpStateEnv = "STRATA_FP_STATE" // acked and began, for the verifier

	// A working child opens the store fpSessions times; in each session
	// every partition commits fpSessionTxns transactions, then the store
	// is closed (right after a memtable rotation, so that Close is likely
	// to find a flush running).
	fpSessions    = 2
	fpSessionTxns = 15
	fpChildLimit  = 2 * time.Minute // a child running longer is hung
)

// fpRecovery lists the failpoints of Open's recovery.
var fpRecovery = []string{
	failpoint.RecoveryAfterReplayBeforeMani,
	failpoint.RecoveryAfterManifestBeforeWAL,
	failpoint.RecoveryAfterNewWALBeforeGC,
}

// fpPerOpen lists the failpoints hit at most once per Open and Close
// (a working child opens and closes the store fpSessions times).
var fpPerOpen = append([]string{failpoint.CloseMidFlush}, fpRecovery...)

// fpOptions are crashOptions with the smallest manifests: a manifest rolls
// as soon as its edits are as large as its snapshot.
func fpOptions(noSync bool) *Options {
	o := crashOptions(noSync)
	o.MaxManifestFileSize = 1
	return o
}

// TestCrashFailpointChild is the child process of TestCrashFailpoints; it
// does nothing in a normal test run.
func TestCrashFailpointChild(t *testing.T) {
	dir := os.Getenv(fpDirEnv)
	switch os.Getenv(fpRoleEnv) {
	case "work":
		seed, _ := strconv.ParseUint(os.Getenv(fpSeedEnv), 10, 64)
		if err := fpWork(dir, seed, os.Getenv(fpSyncEnv) == "1", fpReporter()); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	case "verify":
		acked, began, err := fpParseState(os.Getenv(fpStateEnv))
		if err != nil {
			t.Fatal(err)
		}
		verifyCrashStore(t, dir, -1, acked, began)
	default:
		t.Skip("runs only as the child of TestCrashFailpoints")
	}
}

// fpReporter returns a function writing lines to the ack pipe (fd 3).
func fpReporter() func(format string, args ...any) {
	acks := bufio.NewWriter(os.NewFile(3, "acks"))
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(acks, format, args...)
		acks.Flush()
		mu.Unlock()
	}
}

// fpWork runs the working child: fpSessions times open the store, run the
// workload, close it. It reports "O" after each Open, B/A/F around each
// commit, "M" with the work of each session before its Close, "C" after
// it and "E" at the end.
func fpWork(dir string, seed uint64, noSync bool, report func(string, ...any)) error {
	for sess := range fpSessions {
		db, err := Open(dir, fpOptions(noSync))
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		report("O 0 0\n")
		if err := fpSession(db, seed^uint64(sess)<<32, report); err != nil {
			db.Close()
			return err
		}
		m := db.Metrics()
		report("M %d %d %d %d %d %d\n", m.Flushes, m.Compactions, m.TrivialMoves, m.TablesDeleted, m.ManifestRolls, m.Rotations)
		if err := db.Close(); err != nil {
			return fmt.Errorf("close: %w", err)
		}
		report("C 0 0\n")
	}
	report("E 0 0\n")
	return nil
}

// fpSession commits fpSessionTxns transactions in each partition, then
// more in partition 0 until the memtable rotates (at most 64), so that the
// Close that follows is likely to find a flush running.
func fpSession(db *DB, seed uint64, report func(string, ...any)) error {
	errs := make([]error, crashParts)
	next := make([]int, crashParts)
	rngs := make([]*rand.Rand, crashParts)
	var wg sync.WaitGroup
	for p := range crashParts {
		rngs[p] = rand.New(rand.NewPCG(seed, uint64(p)))
		if o, err := db.CommittedOffset(strconv.Itoa(p)); err == nil {
			next[p] = int(o) + 1
		}
		wg.Go(func() {
			for end := next[p] + fpSessionTxns; next[p] < end && errs[p] == nil; next[p]++ {
				errs[p] = crashCommit(db, rngs[p], p, next[p], report)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	rotations := db.Metrics().Rotations
	for end := next[0] + 64; next[0] < end && db.Metrics().Rotations == rotations; next[0]++ {
		if err := crashCommit(db, rngs[0], 0, next[0], report); err != nil {
			return err
		}
	}
	return nil
}

// TestCrashFailpoints runs -failpoint.cycles cycles per failpoint, in a
// random order, on one directory. A cycle arms failpoint@n in a working
// child, n drawn from [1, the failpoint's estimated hits per child]; the
// child must be killed by that failpoint, or finish if it was hit fewer
// than n times. Then the store is checked as TestCrashSIGKILL checks it,
// after, in one cycle in five, one or two verifiers killed during their
// Open by a recovery failpoint; and Check must find no problem.
func TestCrashFailpoints(t *testing.T) {
	if os.Getenv(fpRoleEnv) != "" {
		t.Skip("child")
	}
	if os.Getenv(failpoint.EnvVar) != "" {
		t.Skipf("%s is set: the test would kill itself", failpoint.EnvVar)
	}
	seed := testSeed(t)
	r := &fpRun{
		t: t, rng: rand.New(rand.NewPCG(seed, 0)), dir: t.TempDir(),
		acked: make([]int, crashParts), began: make([]int, crashParts),
		stats: map[string]*fpStat{}, left: crashLeftovers{deepest: -1},
	}
	for p := range crashParts {
		r.acked[p], r.began[p] = -1, -1
	}
	for _, name := range failpoint.Names {
		r.stats[name] = &fpStat{hi: fpInitialHits(name)}
	}
	defer r.saveOnFailure(seed)
	for round := 0; round < *failpointCycles; round++ {
		names := slices.Clone(failpoint.Names)
		r.rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		for _, name := range names {
			r.cycle(name)
		}
	}
	r.report()
}

// fpInitialHits estimates how often a working child hits a failpoint (a
// child makes about 17 flushes, 6 compactions, 2 manifest rolls and 40
// table deletions per session); the estimate then follows what the children do, without
// growing past fpSessions for the failpoints of fpPerOpen.
func fpInitialHits(name string) int {
	switch name {
	case failpoint.WALBeforeWrite, failpoint.WALAfterSyncBeforeApply, failpoint.MemtableAfterApplyBeforeAck:
		return fpSessions * crashParts * fpSessionTxns
	case failpoint.WALBeforeSync, failpoint.WALRotateAfterCreateBeforeSync, failpoint.SSTAfterWriteBeforeSync,
		failpoint.FlushAfterSSTSyncBeforeMani, failpoint.FlushAfterManifestBeforeDelete,
		failpoint.ManifestBeforeAppend, failpoint.ManifestAfterAppendBeforeSync, failpoint.GCMidDelete:
		return 20 * fpSessions
	case failpoint.CompactionAfterOutputsBeforeM, failpoint.CompactionAfterManifestBeforeD:
		return 4 * fpSessions
	case failpoint.ManifestRollBeforeCreate, failpoint.ManifestRollAfterCreate, failpoint.WALMidRecord:
		return 2 * fpSessions
	}
	return fpSessions // fpPerOpen
}

// fpStat is what the cycles of one failpoint did.
type fpStat struct {
	cycles, fired      int
	minFired, maxFired int // the n of the cycles that fired
	verifierFired      int // kills of a verifier during its Open
	hi                 int // n is drawn from [1, hi]
}

// fpRun is the state of TestCrashFailpoints.
type fpRun struct {
	t            *testing.T
	rng          *rand.Rand
	dir          string
	acked, began []int
	stats        map[string]*fpStat
	n            int    // cycles run
	last         string // the last cycle, for a failure
	work         fpWorkDone
	left         crashLeftovers
	reopens      crashWork
	doubles      int
	kept         int // kills after a WAL write whose commit survived
}

// cycle runs one cycle with failpoint name armed in the working child.
func (r *fpRun) cycle(name string) {
	t, st := r.t, r.stats[name]
	n := 1 + r.rng.IntN(st.hi)
	noSync := r.rng.IntN(2) == 1
	childSeed := r.rng.Uint64()
	r.n++
	r.last = fmt.Sprintf("cycle %d: %s@%d, NoSync %v, child seed %d", r.n, name, n, noSync, childSeed)
	out := r.runChild("work", name, n, childSeed, noSync)
	st.cycles++
	r.work.add(out.work)
	if out.fired {
		st.fired++
		if st.fired == 1 || n < st.minFired {
			st.minFired = n
		}
		st.maxFired = max(st.maxFired, n)
		if n*4 > st.hi*3 && !slices.Contains(fpPerOpen, name) {
			st.hi += max(1, st.hi/2) // fired high up: there may be more hits
		}
	} else {
		st.hi = max(1, n*3/4) // fewer than n hits
	}
	r.left.add(checkStoreFilesClosed(t, r.dir))
	for double := r.rng.IntN(5) == 0; double; double = r.rng.IntN(3) == 0 {
		rec := fpRecovery[r.rng.IntN(len(fpRecovery))]
		r.last += fmt.Sprintf("; verifier killed at %s@1", rec)
		if !r.runChild("verify", rec, 1, 0, false).fired {
			t.Fatalf("%s: the verifier was not killed by %s during its Open", r.last, rec)
		}
		r.stats[rec].verifierFired++
		r.doubles++
		r.left.add(checkStoreFilesClosed(t, r.dir))
	}
	inFlight := slices.Clone(r.began)
	r.reopens.add(verifyCrashStore(t, r.dir, r.n, r.acked, r.began))
	if rep, err := Check(r.dir, nil); err != nil {
		t.Fatalf("%s: Check after the reopen: %v\n%s", r.last, err, rep)
	}
	if out.fired && slices.Contains(fpAfterWALWrite, name) {
		r.checkKept(inFlight)
	}
}

// fpAfterWALWrite lists the failpoints between a commit's WAL write and
// its acknowledgement: the commit that hits one is in the WAL (in the OS's
// cache at least, which a SIGKILL keeps) and must survive.
var fpAfterWALWrite = []string{failpoint.WALAfterSyncBeforeApply, failpoint.MemtableAfterApplyBeforeAck}

// checkKept checks, after a kill at a failpoint of fpAfterWALWrite, that
// the killed commit survived: a partition whose last begun transaction
// (inFlight) was not acknowledged has it committed. (The commit that hit
// the failpoint was the last one begun in its partition.)
func (r *fpRun) checkKept(inFlight []int) {
	db, err := Open(r.dir, crashOptions(false))
	if err != nil {
		r.t.Fatalf("%s: reopen: %v", r.last, err)
	}
	offsets, err := db.CommittedOffsets()
	if err := errors.Join(err, db.Close()); err != nil {
		r.t.Fatalf("%s: committed offsets: %v", r.last, err)
	}
	for p, s := range inFlight {
		if o, ok := offsets[strconv.Itoa(p)]; ok && int(o) == s && r.acked[p] < s {
			r.kept++
			return
		}
	}
	r.t.Fatalf("%s: the commit killed after its WAL write is lost: offsets %v, acknowledged %v, begun %v", r.last, offsets, r.acked, inFlight)
}

// fpWorkDone adds up the work the working children reported.
type fpWorkDone struct {
	opens, sessions, commits                   int
	flushes, compactions, moves, tablesDeleted int64
	manifestRolls, rotations                   int64
}

func (w *fpWorkDone) add(o fpWorkDone) {
	w.opens += o.opens
	w.sessions += o.sessions
	w.commits += o.commits
	w.flushes += o.flushes
	w.compactions += o.compactions
	w.moves += o.moves
	w.tablesDeleted += o.tablesDeleted
	w.manifestRolls += o.manifestRolls
	w.rotations += o.rotations
}

// fpOutcome is how a child ended.
type fpOutcome struct {
	fired bool // killed by the armed failpoint; otherwise it finished
	work  fpWorkDone
}

// runChild runs a child in role "work" or "verify" with failpoint name
// armed at hit n, updates r.acked and r.began from its acknowledgements,
// and fails the test unless the child was killed by that failpoint or
// finished without reaching it.
func (r *fpRun) runChild(role, name string, n int, seed uint64, noSync bool) fpOutcome {
	t := r.t
	var output bytes.Buffer
	cmd, pr := startChild(t, "TestCrashFailpointChild", append(fpEnviron(), fpRoleEnv+"="+role, fpDirEnv+"="+r.dir,
		fpSeedEnv+"="+strconv.FormatUint(seed, 10), fpSyncEnv+"="+map[bool]string{true: "1", false: "0"}[noSync],
		fpStateEnv+"="+fpFormatState(r.acked, r.began), failpoint.EnvVar+"="+name+"@"+strconv.Itoa(n)), &output)
	hung := time.AfterFunc(fpChildLimit, func() { cmd.Process.Kill() })
	work, ended, failed := r.readAcks(pr)
	pr.Close()
	err := cmd.Wait()
	if !hung.Stop() {
		t.Fatalf("%s: the %s child ran for more than %s; its output:\n%s", r.last, role, fpChildLimit, output.String())
	}
	if failed != "" {
		t.Fatalf("%s: %s; the child's output:\n%s", r.last, failed, output.String())
	}
	fired := strings.Contains(output.String(), "failpoint: "+name+" fired")
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case fired && ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		return fpOutcome{fired: true, work: work}
	case !fired && err == nil && (ended || role == "verify"):
		return fpOutcome{work: work}
	}
	t.Fatalf("%s: the %s child neither was killed by the failpoint nor finished: %v; its output:\n%s", r.last, role, err, output.String())
	return fpOutcome{}
}

// readAcks reads a child's report lines until it exits.
func (r *fpRun) readAcks(pr io.Reader) (work fpWorkDone, ended bool, failed string) {
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "M" {
			var m fpWorkDone
			if _, err := fmt.Sscan(sc.Text()[2:], &m.flushes, &m.compactions, &m.moves, &m.tablesDeleted, &m.manifestRolls, &m.rotations); err != nil {
				r.t.Fatalf("%s: bad metrics line %q", r.last, sc.Text())
			}
			work.add(m)
			continue
		}
		p, err1 := strconv.Atoi(f[min(1, len(f)-1)])
		s, err2 := strconv.Atoi(f[len(f)-1])
		if len(f) != 3 || err1 != nil || err2 != nil || p < 0 || p >= crashParts {
			r.t.Fatalf("%s: bad ack line %q", r.last, sc.Text())
		}
		switch f[0] {
		case "O":
			work.opens++
		case "C":
			work.sessions++
		case "E":
			ended = true
		case "B":
			r.began[p] = max(r.began[p], s)
		case "A":
			r.acked[p] = max(r.acked[p], s)
			work.commits++
		case "F":
			failed = fmt.Sprintf("commit of %d/%d failed", p, s)
		}
	}
	return work, ended, failed
}

// fpEnviron returns the environment without the variables of the crash
// tests.
func fpEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name != failpoint.EnvVar && !strings.HasPrefix(name, "STRATA_FP_") && !strings.HasPrefix(name, "STRATA_CRASH_") {
			env = append(env, kv)
		}
	}
	return env
}

// fpFormatState formats acked and began for fpParseState.
func fpFormatState(acked, began []int) string {
	var b strings.Builder
	for p := range acked {
		fmt.Fprintf(&b, "%d %d ", acked[p], began[p])
	}
	return b.String()
}

// fpParseState parses what fpFormatState formats.
func fpParseState(s string) (acked, began []int, err error) {
	f := strings.Fields(s)
	if len(f) != 2*crashParts {
		return nil, nil, fmt.Errorf("bad %s %q", fpStateEnv, s)
	}
	for i := 0; i < len(f); i += 2 {
		a, err1 := strconv.Atoi(f[i])
		b, err2 := strconv.Atoi(f[i+1])
		if err := errors.Join(err1, err2); err != nil {
			return nil, nil, fmt.Errorf("bad %s %q: %w", fpStateEnv, s, err)
		}
		acked, began = append(acked, a), append(began, b)
	}
	return acked, began, nil
}

// report logs what the cycles did, per failpoint.
func (r *fpRun) report() {
	t := r.t
	t.Logf("%d cycles (%d per failpoint), %d double crashes, %d kills after a commit's WAL write (the commit survived); acknowledged offsets at the end: %v",
		r.n, *failpointCycles, r.doubles, r.kept, r.acked)
	var never []string
	for _, name := range failpoint.Names {
		st := r.stats[name]
		line := fmt.Sprintf("failpoint %-42s fired in %d of %d cycles", name, st.fired, st.cycles)
		if st.fired > 0 {
			line += fmt.Sprintf(" (n %d..%d)", st.minFired, st.maxFired)
		}
		if st.verifierFired > 0 {
			line += fmt.Sprintf(", and in %d verifiers", st.verifierFired)
		}
		t.Log(line)
		if st.fired+st.verifierFired == 0 {
			never = append(never, name)
		}
	}
	w := r.work
	t.Logf("children: %d opens, %d sessions closed, %d acknowledged commits, %d flushes, %d compactions (%d trivial moves), %d table deletions, %d manifest rolls, %d rotations (counted for closed sessions only)",
		w.opens, w.sessions, w.commits, w.flushes, w.compactions, w.moves, w.tablesDeleted, w.manifestRolls, w.rotations)
	t.Logf("reopens in the parent did %s", r.reopens)
	t.Logf("%d kills cut a flush or compaction (%d a compaction), leaving %d orphan tables; %d WALs below the log number, %d old manifests and %d CURRENT.tmp were left for recovery to remove; deepest level %d",
		r.left.cutWrites, r.left.cutCompactions, r.left.orphanTables, r.left.oldLogs, r.left.oldManifests, r.left.currentTmp, r.left.deepest)
	if len(never) > 0 {
		t.Logf("failpoints that never fired: %v", never)
	}
}

// saveOnFailure copies the store directory out of the test's temporary
// directory if the test failed, and logs the last cycle.
func (r *fpRun) saveOnFailure(seed uint64) {
	if !r.t.Failed() {
		return
	}
	r.t.Logf("failed in %s (test seed %d)", r.last, seed)
	dst, err := os.MkdirTemp("", "strata-failpoints-")
	if err == nil {
		err = fpCopyDir(dst, r.dir)
	}
	if err != nil {
		r.t.Logf("saving the store directory: %v", err)
		return
	}
	r.t.Logf("the store directory is saved in %s", dst)
}

// fpCopyDir copies the files of directory src into dst.
func fpCopyDir(dst, src string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
