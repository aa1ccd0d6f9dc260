//go:build unix

package lsm

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
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
	db, err := Open(dir, &Options{NoSync: os.Getenv(crashSyncEnv) == "1", MemTableSize: 256 << 10})
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
				if rng.IntN(10) == 0 {
					tx := db.Begin(nil)
					tx.Set([]byte(fmt.Sprintf("r/%d/%06d", p, s)), []byte("rolled back"))
					tx.SetOffset(strconv.Itoa(p), int64(s+1_000_000))
					tx.Rollback()
				}
				tx := db.Begin(nil)
				n := crashWrites(p, s)
				for i := 0; i < n; i++ {
					tx.Set([]byte(crashKey(p, s, i)), crashValue(p, s, i))
				}
				tx.Set([]byte(crashKey(p, s, -1)), []byte(strconv.Itoa(n)))
				if crashDeletes(s) {
					d := s - 5
					for i := 0; i < crashWrites(p, d); i++ {
						tx.Delete([]byte(crashKey(p, d, i)))
					}
					tx.Delete([]byte(crashKey(p, d, -1)))
				}
				tx.SetOffset(strconv.Itoa(p), int64(s))
				report("B %d %d\n", p, s)
				if err := tx.Commit(); err != nil {
					report("F %d %d\n", p, s)
					return
				}
				report("A %d %d\n", p, s)
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
// there), none partial, none extra, no rolled-back write.
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
	for cycle := 0; cycle < cycles; cycle++ {
		noSync := cycle%2 == 1
		kill := time.Duration(5+rng.IntN(400)) * time.Millisecond
		runCrashChild(t, dir, rng.Uint64(), noSync, kill, acked, began)
		verifyCrashStore(t, dir, cycle, acked, began)
	}
	t.Logf("%d kill cycles; acknowledged offsets at the end: %v", cycles, acked)
}

// runCrashChild runs one child until it is killed after d, and updates acked
// and began with the highest acknowledged and begun transaction of each
// partition.
func runCrashChild(t *testing.T, dir string, seed uint64, noSync bool, d time.Duration, acked, began []int) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), crashRoleEnv+"="+dir, crashSeedEnv+"="+strconv.FormatUint(seed, 10),
		crashSyncEnv+"="+map[bool]string{true: "1", false: "0"}[noSync])
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{pw}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	timer := time.AfterFunc(d, func() { cmd.Process.Kill() })
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		var kind string
		var p, s int
		if _, err := fmt.Sscan(sc.Text(), &kind, &p, &s); err != nil {
			t.Fatalf("bad ack line %q", sc.Text())
		}
		switch kind {
		case "B":
			began[p] = max(began[p], s)
		case "A":
			acked[p] = max(acked[p], s)
		case "F":
			t.Fatalf("child: commit of %d/%d failed", p, s)
		}
	}
	pr.Close()
	err = cmd.Wait()
	timer.Stop()
	if ws, ok := cmd.ProcessState.Sys().(interface{ Signaled() bool }); !ok || !ws.Signaled() {
		t.Fatalf("child was not killed: %v\n%s", err, stderr.String())
	}
}

// verifyCrashStore opens the store and checks it against the workload.
func verifyCrashStore(t *testing.T, dir string, cycle int, acked, began []int) {
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("cycle %d: reopen: %v", cycle, err)
	}
	defer db.Close()
	offsets, err := db.CommittedOffsets()
	if err != nil {
		t.Fatalf("committed offsets: %v", err)
	}
	for p := 0; p < crashParts; p++ {
		o := -1
		if v, ok := offsets[strconv.Itoa(p)]; ok {
			o = int(v)
		}
		if o < acked[p] || o > began[p] {
			t.Fatalf("cycle %d: partition %d committed offset %d, acknowledged %d, begun %d", cycle, p, o, acked[p], began[p])
		}
		want := crashExpected(p, o)
		prefix := fmt.Sprintf("d/%d/", p)
		it, _ := db.NewIterator(&IterOptions{LowerBound: []byte(prefix), UpperBound: []byte(fmt.Sprintf("d/%d0", p))})
		got := 0
		for ok := it.First(); ok; ok = it.Next() {
			k := string(it.Key())
			w, ok := want[k]
			if !ok {
				t.Fatalf("cycle %d: partition %d at offset %d holds unexpected key %s", cycle, p, o, k)
			}
			if w != string(it.Value()) {
				t.Fatalf("cycle %d: key %s has a wrong value", cycle, k)
			}
			got++
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		if got != len(want) {
			t.Fatalf("cycle %d: partition %d at offset %d holds %d of %d keys", cycle, p, o, got, len(want))
		}
	}
	it, _ := db.NewIterator(&IterOptions{LowerBound: []byte("r/"), UpperBound: []byte("r0")})
	if it.First() {
		t.Fatalf("cycle %d: rolled-back key %s is present", cycle, it.Key())
	}
	it.Close()
	for name := range offsets {
		if !strings.ContainsAny(name, "0123") || len(name) != 1 {
			t.Fatalf("cycle %d: unexpected offset name %q", cycle, name)
		}
	}
}
