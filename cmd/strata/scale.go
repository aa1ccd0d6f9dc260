package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stratadb/strata/lsm"
)

// The scale benchmark loads a store the way a stream processor would, in
// transactions of a thousand writes that each commit the offset of the last
// record they hold, kills the loader with SIGKILL (as a crash would), and
// then measures the store as it was left: how long Open takes (bounded by
// the WAL tail, not the store's size), whether the committed offset tells
// exactly which transactions are there, how fast point reads and a full
// scan go, and the write, space and read amplification of the LSM tree.
//
// The loader is a child process: the same binary, run with the hidden
// -child flag, reporting its progress and metrics to the parent as JSON
// lines on file descriptor 3.

// scaleStream names the offset the loader commits with every transaction.
const scaleStream = "scale-input"

// scaleConfig holds the flags of the scale command.
type scaleConfig struct {
	dir          string
	keys         int
	batch        int
	valueSize    int
	killAt       float64
	memtable     int64
	cache        int64
	noSync       bool
	reads        int
	scan         bool
	settle       time.Duration
	stallTimeout time.Duration
	seed         int64
	keep         bool
	logLevel     string
	child        bool // hidden: this process is the loader
}

// scaleFlags returns the command's flag set, filling c.
func scaleFlags(c *scaleConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.StringVar(&c.dir, "dir", "", "store directory, absent or empty (default: a new temporary directory)")
	fs.IntVar(&c.keys, "keys", 1000000, "keys to load")
	fs.IntVar(&c.batch, "batch", 1000, "writes per transaction")
	fs.IntVar(&c.valueSize, "value", 100, "value size in bytes")
	fs.Float64Var(&c.killAt, "kill-at", 1, "SIGKILL the loader once this fraction of the keys is committed (1: right after the load)")
	fs.Int64Var(&c.memtable, "memtable", 0, "Options.MemTableSize in bytes (0: the default)")
	fs.Int64Var(&c.cache, "cache", 0, "Options.BlockCacheSize in bytes (0: the default)")
	fs.BoolVar(&c.noSync, "nosync", false, "commit without fdatasync (survives kill -9, not power loss)")
	fs.IntVar(&c.reads, "reads", 200000, "point reads of existing keys, and as many of missing keys")
	fs.BoolVar(&c.scan, "scan", true, "scan and verify the whole store")
	fs.DurationVar(&c.settle, "settle", 10*time.Minute, "after reopening, wait at most this long for flushes and compactions to finish before reading (0: do not wait)")
	fs.DurationVar(&c.stallTimeout, "stall-timeout", 5*time.Minute, "fail if the loader commits nothing for this long")
	fs.Int64Var(&c.seed, "seed", 0, "seed of the keys read (0: time-based)")
	fs.BoolVar(&c.keep, "keep", false, "keep the store directory")
	fs.StringVar(&c.logLevel, "log", "", "the loader's engine log level, printed to stderr: debug, info, warn or error (default: none)")
	fs.BoolVar(&c.child, "child", false, "")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: strata scale [flags]\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "child" {
				return
			}
			def := ""
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
				def = " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(fs.Output(), "  -%s\n    \t%s%s\n", f.Name, f.Usage, def)
		})
	}
	return fs
}

// args returns the flags that make a child process load what c describes.
func (c *scaleConfig) childArgs() []string {
	return []string{"scale", "-child", "-dir", c.dir,
		"-keys", strconv.Itoa(c.keys), "-batch", strconv.Itoa(c.batch), "-value", strconv.Itoa(c.valueSize),
		"-memtable", strconv.FormatInt(c.memtable, 10), "-cache", strconv.FormatInt(c.cache, 10),
		"-nosync=" + strconv.FormatBool(c.noSync), "-log", c.logLevel}
}

// validate rejects flags that cannot work.
func (c *scaleConfig) validate() error {
	switch {
	case c.keys < 1:
		return errors.New("scale: -keys must be positive")
	case c.batch < 1:
		return errors.New("scale: -batch must be positive")
	case c.valueSize < 0:
		return errors.New("scale: -value must not be negative")
	case c.killAt <= 0 || c.killAt > 1:
		return errors.New("scale: -kill-at must be in (0, 1]")
	case c.reads < 0:
		return errors.New("scale: -reads must not be negative")
	}
	return nil
}

// options returns the store's options: the defaults but for the flags.
func (c *scaleConfig) options(logger *slog.Logger) *lsm.Options {
	return &lsm.Options{MemTableSize: c.memtable, BlockCacheSize: c.cache, NoSync: c.noSync, Logger: logger}
}

// engineLogger returns the logger the -log flag asks for, or nil.
func (c *scaleConfig) engineLogger(w io.Writer) (*slog.Logger, error) {
	if c.logLevel == "" {
		return nil, nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("scale: -log: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), nil
}

// scale runs the scale command.
func scale(args []string) error {
	var c scaleConfig
	if err := scaleFlags(&c).Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if c.child {
		return runLoader(c, os.Stdout, os.Stderr)
	}
	_, err := runScale(c, os.Stdout)
	return err
}

// scaleResult holds the figures of one run.
type scaleResult struct {
	load    loadResult
	killDir dirStats // the directory as the killed loader left it
	reopen  reopenResult
	present int // keys the committed offset says are there
	txns    int // transactions the committed offset says are there
	flush   time.Duration
	settle  time.Duration
	settled bool
	hits    getResult
	misses  getResult
	scan    scanResult
	endDir  dirStats
	end     lsm.Metrics // of the reopened store, after the reads
}

// runScale runs the benchmark described by c, printing to out.
func runScale(c scaleConfig, out io.Writer) (*scaleResult, error) {
	if c.seed == 0 {
		c.seed = time.Now().UnixNano()
	}
	dir, cleanup, err := workDir(c.dir, "strata-scale-", c.keep)
	if err != nil {
		return nil, fmt.Errorf("scale: %w", err)
	}
	c.dir = dir
	defer cleanup()
	fmt.Fprintf(out, "strata scale: %d keys of %d bytes with %d-byte values, %d writes per transaction, %s commits, store %s, seed %d, load average %s\n",
		c.keys, scaleKeySize, c.valueSize, c.batch, map[bool]string{false: "synced", true: "unsynced"}[c.noSync], c.dir, c.seed, loadAverage())
	r := &scaleResult{}
	if r.load, err = runLoad(c, out); err != nil {
		return r, err
	}
	printLoad(out, c, r.load)
	if r.killDir, err = statDir(c.dir); err != nil {
		return r, err
	}
	fmt.Fprintf(out, "store after the kill: %s\n", r.killDir)
	db, err := reopen(c, out, r)
	if err != nil {
		return r, err
	}
	err = measure(c, out, db, r)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("scale: close: %w", cerr)
	}
	if err != nil {
		return r, err
	}
	if r.endDir, err = statDir(c.dir); err != nil {
		return r, err
	}
	printAmplification(out, c, r)
	fmt.Fprintf(out, "load average at the end: %s\n", loadAverage())
	return r, nil
}

// loadAverage returns the machine's load averages over 1, 5 and 15
// minutes where /proc tells them (other processes skew every timing).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// reopen opens the killed store, timing Open and counting the WAL it
// replayed, and checks the committed offset against what the loader
// reported.
func reopen(c scaleConfig, out io.Writer, r *scaleResult) (*lsm.DB, error) {
	var err error
	var db *lsm.DB
	if db, r.reopen, err = openKilled(c); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "reopen after kill -9: %v, replayed %d WAL files (%s, %d records), dropped a torn tail of %s\n",
		r.reopen.elapsed.Round(time.Microsecond), r.reopen.walFiles, human(r.reopen.walBytes), r.reopen.records, human(r.reopen.tornBytes))
	if err := checkCommitted(c, db, r); err != nil {
		db.Close()
		return nil, err
	}
	fmt.Fprintf(out, "committed offset: %d transactions (%d keys) are in the store; the loader had reported %d\n",
		r.txns, r.present, r.load.last.Txns)
	return db, nil
}

// measure waits for the background work, then measures point reads and
// the scan.
func measure(c scaleConfig, out io.Writer, db *lsm.DB, r *scaleResult) error {
	var err error
	start := time.Now()
	if err = db.Flush(); err != nil {
		return fmt.Errorf("scale: flush after reopen: %w", err)
	}
	r.flush = time.Since(start)
	if c.settle > 0 {
		r.settle, r.settled = settle(db, c.settle)
		fmt.Fprintf(out, "flushed the replayed memtables in %v; background compactions %s in %v more\n",
			r.flush.Round(time.Microsecond), map[bool]string{true: "finished", false: "still running"}[r.settled],
			r.settle.Round(time.Millisecond))
	}
	fmt.Fprintf(out, "LSM shape before the reads:\n%s", indent(db.Metrics().String()))
	if r.hits, err = measureGets(c, db, r.present, true); err != nil {
		return err
	}
	fmt.Fprintf(out, "get, existing keys: %s\n", r.hits)
	if r.misses, err = measureGets(c, db, r.present, false); err != nil {
		return err
	}
	fmt.Fprintf(out, "get, missing keys:  %s\n", r.misses)
	if c.scan {
		if r.scan, err = scanAll(c, db, r.present); err != nil {
			return err
		}
		fmt.Fprintf(out, "scan: %s\n", r.scan)
	}
	r.end = db.Metrics()
	fmt.Fprintf(out, "reopened store at the end:\n%s", indent(r.end.String()))
	return nil
}

// printLoad prints the load's figures and the loader's last metrics.
func printLoad(out io.Writer, c scaleConfig, l loadResult) {
	m := l.last
	user := float64(m.Keys) * float64(scaleKeySize+c.valueSize)
	secs := m.Elapsed.Seconds()
	fmt.Fprintf(out, "load: %d keys in %d transactions in %v: %.0f keys/s, %.1f MB/s of keys and values; killed %s\n",
		m.Keys, m.Txns, m.Elapsed.Round(time.Millisecond), float64(m.Keys)/secs, user/secs/1e6, l.killedWhen)
	fmt.Fprintf(out, "loader CPU time (user+system, with the background flushes and compactions): %v, %.2fµs per key; load average %s\n",
		l.cpu.Round(time.Millisecond), float64(l.cpu.Microseconds())/float64(m.Keys), loadAverage())
	fmt.Fprintf(out, "loader metrics at its last commit:\n%s", indent(m.Metrics.String()))
}

// printAmplification prints the write, space and read amplification.
func printAmplification(out io.Writer, c scaleConfig, r *scaleResult) {
	a := amplification(c, r)
	fmt.Fprintf(out, "write amplification: %.2f at the end of the load, %.2f once the reopened store settled (tables written / user bytes); %.2f counting the WAL\n",
		a.writeLoad, a.writeEnd, a.writeWithWAL)
	fmt.Fprintf(out, "space amplification: %.2f after the kill (%s for %s of live keys and values), %.2f at the end (%s)\n",
		a.spaceKill, human(r.killDir.total), human(a.live), a.spaceEnd, human(r.endDir.total))
	fmt.Fprintf(out, "read amplification: existing keys %.2f block reads and %.2f bloom skips per get; missing keys %.2f block reads and %.2f bloom skips per get; %d tables could hold a key (%d in L0, plus one in each of %d deeper levels)\n",
		r.hits.blockReadsPerGet(), r.hits.bloomSkipsPerGet(), r.misses.blockReadsPerGet(), r.misses.bloomSkipsPerGet(),
		a.tablesPerGet, r.end.Levels[0].Tables, a.tablesPerGet-r.end.Levels[0].Tables)
}

// indent indents every line of s.
func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    ") + "\n"
}

// human formats n bytes with a binary unit.
func human(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	f, i := float64(n)/1024, 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f%ciB", f, units[i])
}
