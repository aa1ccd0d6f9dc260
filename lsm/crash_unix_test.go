//go:build unix

package lsm

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var crashCycles = flag.Int("crash.cycles", 20, "kill cycles of TestCrashSIGKILL")

const (
	crashRoleEnv = "STRATA_CRASH_CHILD_DIR"
	crashSeedEnv = "STRATA_CRASH_SEED"
	crashSyncEnv = "STRATA_CRASH_NOSYNC"
	crashParts   = 4
)

// TestCrashChild is the child process of TestCrashSIGKILL; it does nothing
// in a normal test run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashRoleEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestCrashSIGKILL")
	}
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	o := crashOptions(os.Getenv(crashSyncEnv) == "1")
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := Open(dir, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	acks := bufio.NewWriter(os.NewFile(3, "acks"))
	var mu sync.Mutex
	report := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(acks, format, args...)
		acks.Flush()
		mu.Unlock()
	}
	report("O 0 0\n")
	go func() {
		for range time.Tick(10 * time.Millisecond) {
			m := db.Metrics()
			deepest := -1
			for level, l := range m.Levels {
				if l.Tables > 0 {
					deepest = level
				}
			}
			report("M %d %d %d %d %d\n", m.Flushes, m.Compactions, m.TrivialMoves, m.TablesDeleted, deepest)
		}
	}()
	var wg sync.WaitGroup
	for p := 0; p < crashParts; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(p)))
			s := 0
			if o, err := db.CommittedOffset(strconv.Itoa(p)); err == nil {
				s = int(o) + 1
			}
			for ; ; s++ {
				if err := crashCommit(db, rng, p, s, report); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	os.Exit(0)
}

// TestCrashSIGKILL kills a child process running the crash workload at a
// random moment, over and over on the same directory, and after every kill
// checks that the reopened store holds exactly the transactions up to each
// partition's committed offset: none lost (every acknowledged one is
// there), none partial, none extra, no rolled-back write. The store's
// memtables and levels are tiny, so that the kills land in flushes,
// compactions and table deletions; after every kill no table the manifest
// names may be missing, and once reopened and idle the store may hold no
// file it does not use.
func TestCrashSIGKILL(t *testing.T) {
	if os.Getenv(crashRoleEnv) != "" {
		t.Skip("child")
	}
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	cycles := *crashCycles
	if testing.Short() {
		cycles = min(cycles, 10)
	}
	dir := t.TempDir()
	acked, began := make([]int, crashParts), make([]int, crashParts)
	for i := range acked {
		acked[i], began[i] = -1, -1
	}
	var children, reopens crashWork
	left := crashLeftovers{deepest: -1}
	for cycle := 0; cycle < cycles; cycle++ {
		noSync := cycle%2 == 1
		kill := time.Duration(5+rng.IntN(400)) * time.Millisecond
		children.add(runCrashChild(t, dir, rng.Uint64(), noSync, kill, acked, began))
		left.add(checkStoreFilesClosed(t, dir))
		reopens.add(verifyCrashStore(t, dir, cycle, acked, began))
	}
	t.Logf("%d kill cycles; acknowledged offsets at the end: %v", cycles, acked)
	t.Logf("children killed after Open: %d; they did at least %s", children.opened, children)
	t.Logf("reopens in the parent did %s", reopens)
	t.Logf("%d kills cut a flush or compaction (%d a compaction), leaving %d orphan tables; %d WALs below the log number, %d old manifests and %d CURRENT.tmp were left for recovery to remove; deepest level %d",
		left.cutWrites, left.cutCompactions, left.orphanTables, left.oldLogs, left.oldManifests, left.currentTmp, left.deepest)
}

// crashWork adds up the work of the processes that opened the store.
type crashWork struct {
	opened                                     int
	flushes, compactions, moves, tablesDeleted int64
	deepest                                    int
}

func (w *crashWork) add(o crashWork) {
	w.opened += o.opened
	w.flushes += o.flushes
	w.compactions += o.compactions
	w.moves += o.moves
	w.tablesDeleted += o.tablesDeleted
	w.deepest = max(w.deepest, o.deepest)
}

func (w crashWork) String() string {
	return fmt.Sprintf("%d flushes, %d compactions (%d trivial moves), %d table deletions, deepest level %d",
		w.flushes, w.compactions, w.moves, w.tablesDeleted, w.deepest)
}

// runCrashChild runs one child until it is killed after d, and updates acked
// and began with the highest acknowledged and begun transaction of each
// partition. It returns the work the child last reported (at most 10ms
// before the kill).
func runCrashChild(t *testing.T, dir string, seed uint64, noSync bool, d time.Duration, acked, began []int) crashWork {
	var stderr bytes.Buffer
	cmd, pr := startChild(t, "TestCrashChild", append(os.Environ(), crashRoleEnv+"="+dir,
		crashSeedEnv+"="+strconv.FormatUint(seed, 10), crashSyncEnv+"="+map[bool]string{true: "1", false: "0"}[noSync]), &stderr)
	timer := time.AfterFunc(d, func() { cmd.Process.Kill() })
	work := crashWork{deepest: -1}
	failed := ""
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		var kind string
		var p, s int
		if strings.HasPrefix(sc.Text(), "M ") {
			if _, err := fmt.Sscan(sc.Text()[2:], &work.flushes, &work.compactions, &work.moves, &work.tablesDeleted, &work.deepest); err != nil {
				t.Fatalf("bad metrics line %q", sc.Text())
			}
			continue
		}
		if _, err := fmt.Sscan(sc.Text(), &kind, &p, &s); err != nil {
			t.Fatalf("bad ack line %q", sc.Text())
		}
		switch kind {
		case "O":
			work.opened = 1
		case "B":
			began[p] = max(began[p], s)
		case "A":
			acked[p] = max(acked[p], s)
		case "F":
			failed = fmt.Sprintf("commit of %d/%d failed", p, s)
		}
	}
	pr.Close()
	err := cmd.Wait()
	timer.Stop()
	if failed != "" {
		t.Fatalf("child: %s; its stderr:\n%s", failed, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(interface{ Signaled() bool }); !ok || !ws.Signaled() {
		t.Fatalf("child was not killed: %v\n%s", err, stderr.String())
	}
	return work
}

// verifyCrashStore opens the store, checks it against the workload, and
// checks its files once it is idle. It returns the work of the reopen
// (flushing the replayed memtables, compacting).
func verifyCrashStore(t *testing.T, dir string, cycle int, acked, began []int) crashWork {
	before := keepCrashedStore(t, dir)
	db, err := Open(dir, crashOptions(false))
	if err != nil {
		t.Fatalf("cycle %d: reopen: %v%s", cycle, err, saveCrashedStore(before))
	}
	defer db.Close()
	if _, err := checkWorkload(db, crashParts, acked, began); err != nil {
		t.Fatalf("cycle %d: %v%s", cycle, err, saveCrashedStore(before))
	}
	checkStoreFilesOpen(t, db)
	m := db.Metrics()
	w := crashWork{flushes: m.Flushes, compactions: m.Compactions, moves: m.TrivialMoves, tablesDeleted: m.TablesDeleted, deepest: -1}
	for level, l := range m.Levels {
		if l.Tables > 0 {
			w.deepest = level
		}
	}
	return w
}

// keepCrashedStore copies the store in dir, as the kill left it, to a
// directory beside it (replacing the last cycle's), and returns its path,
// so that a failure can keep the state that reopened wrong.
func keepCrashedStore(t *testing.T, dir string) string {
	before := dir + ".killed"
	if err := os.RemoveAll(before); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(before, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	return before
}

// saveCrashedStore copies the store as the kill left it (before) out of
// the test's temporary directory, and returns a message naming the copy.
// Opening the copy replays the failed reopen (the one running now would be
// copied while its flushes and compactions change the files).
func saveCrashedStore(before string) string {
	out, err := os.MkdirTemp("", "strata-crash-failure-")
	if err == nil {
		err = os.CopyFS(out+"/killed", os.DirFS(before))
	}
	if err != nil {
		return fmt.Sprintf(" (the store could not be kept: %v)", err)
	}
	return fmt.Sprintf(" (the store as the kill left it is kept in %s/killed)", out)
}

// startChild starts this test binary running only the test named test,
// with environment env, its output to out, and a pipe as file descriptor 3
// for its reports, whose read end it returns.
func startChild(t *testing.T, test string, env []string, out io.Writer) (*exec.Cmd, *os.File) {
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v=false")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{pw}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	return cmd, pr
}
