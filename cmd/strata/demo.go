package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/stratadb/strata/lsm"
)

// The demo plays a stream processor: it consumes a synthetic changelog of
// (key, amount) records spread over partitions, keeps per-key running
// totals in strata, and commits the totals together with the offset of the
// last record processed, one transaction per batch of records. A child
// process does the work and is killed with SIGKILL partway through; a second
// child resumes from the committed offsets. At the end the totals are
// compared with the changelog: a record lost or applied twice would show.

const demoChildEnv = "STRATA_DEMO_CHILD"

type demoConfig struct {
	dir        string
	partitions int
	records    int // per partition
	keys       int
	batch      int
	killAt     float64
	noSync     bool
	keep       bool
}

// validate checks the flags, and that no argument follows them.
func (c *demoConfig) validate(args []string) error {
	switch {
	case len(args) > 0:
		return fmt.Errorf("demo: unexpected argument %q (the store directory is -dir)", args[0])
	case c.partitions < 1:
		return errors.New("demo: -partitions must be positive")
	case c.records < 1:
		return errors.New("demo: -records must be positive")
	case c.keys < 1:
		return errors.New("demo: -keys must be positive")
	case c.batch < 1:
		return errors.New("demo: -batch must be positive")
	case c.killAt < 0 || c.killAt > 1:
		return errors.New("demo: -kill-at must be in [0, 1]")
	}
	return nil
}

func demo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	var c demoConfig
	fs.StringVar(&c.dir, "dir", "", "store directory, new or empty (default: a new temporary directory)")
	fs.IntVar(&c.partitions, "partitions", 4, "changelog partitions")
	fs.IntVar(&c.records, "records", 100000, "records per partition")
	fs.IntVar(&c.keys, "keys", 50000, "distinct keys")
	fs.IntVar(&c.batch, "batch", 500, "records per transaction")
	fs.Float64Var(&c.killAt, "kill-at", 0.5, "kill the first processor once this fraction of the records is committed")
	fs.BoolVar(&c.noSync, "nosync", false, "commit without fdatasync (survives kill -9, not power loss)")
	fs.BoolVar(&c.keep, "keep", false, "keep the store directory")
	fs.Parse(args)
	if os.Getenv(demoChildEnv) != "" {
		return runProcessor(c)
	}
	if err := c.validate(fs.Args()); err != nil {
		return err
	}
	dir, cleanup, err := workDir(c.dir, "strata-demo-", c.keep)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	c.dir = dir
	defer cleanup()
	total := c.partitions * c.records
	fmt.Printf("strata demo: %d partitions x %d records over %d keys, %d records per transaction, store %s\n",
		c.partitions, c.records, c.keys, c.batch, c.dir)

	start := time.Now()
	killAt := int(float64(total) * c.killAt)
	killed, err := runChild(c, killAt)
	if err != nil {
		return err
	}
	if killed > 0 {
		el := time.Since(start)
		fmt.Printf("processor 1: killed with SIGKILL after it reported %d committed records in %v (%.0f records/s)\n",
			killed, el.Round(time.Millisecond), float64(killed)/el.Seconds())
	}
	if _, err := runChild(c, 0); err != nil {
		return err
	}
	elapsed := time.Since(start)
	return verify(c, total, elapsed)
}

// runChild runs a processor in a child process. With killAt > 0 it kills
// the child with SIGKILL once the child reports that many committed records,
// and returns the count it had seen (0 if the child finished first).
func runChild(c demoConfig, killAt int) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	args := []string{"demo", "-dir", c.dir, "-partitions", strconv.Itoa(c.partitions),
		"-records", strconv.Itoa(c.records), "-keys", strconv.Itoa(c.keys), "-batch", strconv.Itoa(c.batch),
		"-nosync=" + strconv.FormatBool(c.noSync)}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), demoChildEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	cmd.ExtraFiles = []*os.File{pw} // fd 3: progress reports
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return 0, err
	}
	pw.Close()
	defer pr.Close()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		n, _ := strconv.Atoi(sc.Text())
		if killAt > 0 && n >= killAt {
			cmd.Process.Kill()
			cmd.Wait()
			return n, nil
		}
	}
	return 0, cmd.Wait()
}

// record returns the key and amount of record i of partition p: a
// deterministic function, so the expected totals can be recomputed.
func record(p, i, keys int) (key int, amount uint64) {
	x := uint64(p)<<40 ^ uint64(i)*0x9E3779B97F4A7C15
	x ^= x >> 31
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 29
	return int(x % uint64(keys)), x>>56 + 1
}

func demoKey(k int) []byte { return []byte(fmt.Sprintf("total/%08d", k)) }

func partitionName(p int) string { return "changelog-" + strconv.Itoa(p) }

// runProcessor consumes the changelog from the committed offsets on.
func runProcessor(c demoConfig) error {
	opened := time.Now()
	db, err := lsm.Open(c.dir, &lsm.Options{NoSync: c.noSync})
	if err != nil {
		return err
	}
	defer db.Close()
	if m := db.Metrics(); m.VisibleSeq > 0 {
		fmt.Printf("processor: reopened the store in %v, replaying its WAL up to sequence number %d\n",
			time.Since(opened).Round(time.Millisecond), m.VisibleSeq)
	}
	progress := os.NewFile(3, "progress")
	next := make([]int, c.partitions)
	for p := range next {
		off, err := db.CommittedOffset(partitionName(p))
		switch {
		case err == nil:
			next[p] = int(off) + 1
			fmt.Printf("processor: partition %d resumes after committed offset %d\n", p, off)
		case !errors.Is(err, lsm.ErrNotFound):
			return fmt.Errorf("partition %d: committed offset: %w", p, err)
		}
	}
	start := time.Now()
	processed := 0
	for more := true; more; {
		more = false
		for p := range next { // round robin, as a consumer polls partitions
			if next[p] >= c.records {
				continue
			}
			n, err := processBatch(db, c, p, next[p])
			if err != nil {
				return err
			}
			next[p] += n
			processed += n
			more = true
			fmt.Fprintln(progress, processed)
		}
	}
	el := time.Since(start)
	fmt.Printf("processor: %d records in %v (%.0f records/s, %d-record transactions)\n",
		processed, el.Round(time.Millisecond), float64(processed)/el.Seconds(), c.batch)
	return nil
}

// processBatch applies records [from, from+batch) of partition p in one
// transaction that also commits the partition's offset.
func processBatch(db *lsm.DB, c demoConfig, p, from int) (int, error) {
	t := db.Begin(nil)
	n := min(c.batch, c.records-from)
	var buf [8]byte
	for i := from; i < from+n; i++ {
		k, amount := record(p, i, c.keys)
		key := demoKey(k)
		var total uint64
		v, err := t.Get(key)
		switch {
		case err == nil:
			total = binary.BigEndian.Uint64(v)
		case !errors.Is(err, lsm.ErrNotFound):
			t.Rollback()
			return 0, err
		}
		binary.BigEndian.PutUint64(buf[:], total+amount)
		if err := t.Set(key, buf[:]); err != nil {
			t.Rollback()
			return 0, err
		}
	}
	if err := t.SetOffset(partitionName(p), int64(from+n-1)); err != nil {
		t.Rollback()
		return 0, err
	}
	return n, t.Commit()
}

// verify recomputes the totals from the changelog and compares.
func verify(c demoConfig, total int, elapsed time.Duration) error {
	want := make([]uint64, c.keys)
	for p := 0; p < c.partitions; p++ {
		for i := 0; i < c.records; i++ {
			k, amount := record(p, i, c.keys)
			want[k] += amount
		}
	}
	db, err := lsm.Open(c.dir, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	for p := 0; p < c.partitions; p++ {
		if off, err := db.CommittedOffset(partitionName(p)); err != nil || off != int64(c.records-1) {
			return fmt.Errorf("partition %d: committed offset %d (%v), want %d", p, off, err, c.records-1)
		}
	}
	lost, dup := 0, 0
	for k, w := range want {
		var got uint64
		if v, err := db.Get(demoKey(k)); err == nil {
			got = binary.BigEndian.Uint64(v)
		} else if !errors.Is(err, lsm.ErrNotFound) {
			return err
		}
		switch {
		case got < w:
			lost++
		case got > w:
			dup++
		}
	}
	fmt.Printf("total: %d records in %v including the crash and recovery (%.0f records/s)\n",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
	if lost > 0 || dup > 0 {
		return fmt.Errorf("verification FAILED: %d keys lost updates, %d keys have duplicated updates", lost, dup)
	}
	fmt.Printf("verified: all %d keys match the changelog exactly: nothing lost, nothing duplicated\n", c.keys)
	return nil
}
