package main

import (
	"bytes"
	"flag"
	"os"
	"testing"
	"time"
)

var seed = flag.Int64("seed", 0, "seed of the keys the scale tests read (0: time-based)")

// TestMain lets the test binary be the scale command's loader: runLoad
// re-executes os.Executable() with "scale -child ...".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "scale" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// smallScale is a configuration that runs in about a second: small
// memtables, so that the load flushes and compacts.
func smallScale(t *testing.T) scaleConfig {
	c := scaleConfig{dir: t.TempDir(), keys: 20000, batch: 1000, valueSize: 100, killAt: 1,
		memtable: 256 << 10, reads: 2000, scan: true, settle: 30 * time.Second, stallTimeout: time.Minute, seed: *seed}
	if c.seed == 0 {
		c.seed = time.Now().UnixNano()
	}
	t.Logf("seed %d", c.seed)
	return c
}

// run runs the benchmark, showing its output if the test fails.
func run(t *testing.T, c scaleConfig) *scaleResult {
	t.Helper()
	var out bytes.Buffer
	r, err := runScale(c, &out)
	if err != nil || t.Failed() {
		t.Log(out.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestScaleKilledAfterLoad(t *testing.T) {
	c := smallScale(t)
	r := run(t, c)
	if r.load.last.Keys != c.keys || !r.load.last.Done || r.present != c.keys || r.txns != c.keys/c.batch {
		t.Errorf("loaded %d keys (done %v), store holds %d keys in %d transactions; want %d in %d",
			r.load.last.Keys, r.load.last.Done, r.present, r.txns, c.keys, c.keys/c.batch)
	}
	if r.killDir.numWALs == 0 || r.reopen.walFiles == 0 || r.reopen.records == 0 || r.reopen.walBytes == 0 {
		t.Errorf("no WAL tail replayed: %d WAL files after the kill, reopen replayed %+v", r.killDir.numWALs, r.reopen)
	}
	if lm := r.load.last.Metrics; lm.Flushes == 0 || lm.Compactions+r.end.Compactions == 0 {
		t.Errorf("the load made %d flushes, and it and the reopened store %d compactions; want some of both",
			lm.Flushes, lm.Compactions+r.end.Compactions)
	}
	if r.hits.n != c.reads || r.misses.n != c.reads || r.scan.keys != c.keys {
		t.Errorf("%d hits, %d misses and %d keys scanned; want %d, %d and %d", r.hits.n, r.misses.n, r.scan.keys, c.reads, c.reads, c.keys)
	}
	if a := amplification(c, r); a.writeEnd < 1 || a.spaceEnd < 1 {
		t.Errorf("write amplification %.2f and space amplification %.2f: tables hold every key once at least", a.writeEnd, a.spaceEnd)
	}
	if names, err := os.ReadDir(c.dir); err != nil || len(names) > 0 {
		// The directory given was empty: it is kept, emptied.
		t.Errorf("the store is still there without -keep: %d files, %v", len(names), err)
	}
}

func TestScaleKilledMidway(t *testing.T) {
	c := smallScale(t)
	c.killAt, c.batch, c.settle, c.keep = 0.5, 500, 0, true
	r := run(t, c)
	if r.load.last.Done || r.present < c.keys/2 || r.present > c.keys || r.present%c.batch != 0 || r.txns != r.present/c.batch {
		t.Errorf("killed at %d keys (done %v): the store holds %d keys in %d transactions", r.load.last.Keys, r.load.last.Done, r.present, r.txns)
	}
	if r.scan.keys != r.present {
		t.Errorf("scanned %d keys, the committed offset says %d", r.scan.keys, r.present)
	}
	if _, err := os.Stat(c.dir); err != nil {
		t.Errorf("-keep: %v", err)
	}
}

func TestScaleKeysAndValues(t *testing.T) {
	seen := make(map[string]bool)
	var prev []byte
	ordered := 0
	for i := range uint64(10000) {
		k := scaleKey(nil, i)
		if j, ok := keyIndex(k); !ok || j != i || len(k) != scaleKeySize {
			t.Fatalf("key %d = %x: index %d, %v", i, k, j, ok)
		}
		if seen[string(k)] {
			t.Fatalf("key %d = %x repeats", i, k)
		}
		seen[string(k)] = true
		if bytes.Compare(prev, k) < 0 {
			ordered++
		}
		prev = k
		v := scaleValue(nil, i, 100)
		if len(v) != 100 || !bytes.Equal(v, scaleValue(make([]byte, 5), i, 100)) || bytes.Equal(v, scaleValue(nil, i+1, 100)) {
			t.Fatalf("value %d = %x: not a 100-byte function of the index", i, v)
		}
	}
	if ordered < 4000 || ordered > 6000 {
		t.Errorf("%d of 10000 keys sort after the one before: the load order is not random", ordered)
	}
	for _, k := range [][]byte{nil, make([]byte, 15), make([]byte, 17), append(scaleKey(nil, 7)[:8:8], 0, 0, 0, 0, 0, 0, 0, 8)} {
		if _, ok := keyIndex(k); ok {
			t.Errorf("keyIndex(%x) accepted a key no index makes", k)
		}
	}
}

func TestScaleFlags(t *testing.T) {
	for _, args := range [][]string{{"-keys", "0"}, {"-kill-at", "0"}, {"-kill-at", "1.5"}, {"-batch", "0"}, {"-reads", "-1"}, {"-nope"}} {
		var c scaleConfig
		fs := scaleFlags(&c)
		fs.SetOutput(new(bytes.Buffer))
		if err := fs.Parse(args); err == nil && c.validate() == nil {
			t.Errorf("flags %q accepted", args)
		}
	}
	var c scaleConfig
	if err := scaleFlags(&c).Parse([]string{"-keys", "5", "-memtable", "1048576", "-nosync"}); err != nil {
		t.Fatal(err)
	}
	var back scaleConfig
	if err := scaleFlags(&back).Parse(c.childArgs()[1:]); err != nil {
		t.Fatal(err)
	}
	if !back.child || back.keys != 5 || back.memtable != 1<<20 || !back.noSync || back.batch != c.batch {
		t.Errorf("the child's flags %q parse to %+v", c.childArgs(), back)
	}
}
