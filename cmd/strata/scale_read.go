package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/stratadb/strata/lsm"
)

// getResult describes a run of point reads.
type getResult struct {
	n                   int
	elapsed             time.Duration
	p50, p99, p999, max time.Duration
	// cacheHits, cacheMisses and bloomSkips are the store's counters'
	// growth during the reads.
	cacheHits, cacheMisses, bloomSkips uint64
}

func (g getResult) String() string {
	if g.n == 0 {
		return "none"
	}
	return fmt.Sprintf("%d in %v: %.0f gets/s, mean %v, p50 %v, p99 %v, p99.9 %v, max %v; block cache %d hits, %d misses; %d bloom skips",
		g.n, g.elapsed.Round(time.Millisecond), float64(g.n)/g.elapsed.Seconds(), g.mean(), g.p50, g.p99, g.p999,
		g.max, g.cacheHits, g.cacheMisses, g.bloomSkips)
}

func (g getResult) mean() time.Duration {
	if g.n == 0 {
		return 0
	}
	return (g.elapsed / time.Duration(g.n)).Round(10 * time.Nanosecond)
}

// blockReadsPerGet is the block cache misses per get: the blocks read
// from the files.
func (g getResult) blockReadsPerGet() float64 { return perGet(g.cacheMisses, g.n) }

func (g getResult) bloomSkipsPerGet() float64 { return perGet(g.bloomSkips, g.n) }

func perGet(v uint64, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(v) / float64(n)
}

// measureGets reads c.reads random keys, each timed: loaded ones (checking
// their values) if existing, else keys no index below c.keys makes.
func measureGets(c scaleConfig, db *lsm.DB, present int, existing bool) (getResult, error) {
	rng := rand.New(rand.NewPCG(uint64(c.seed), map[bool]uint64{true: 1, false: 2}[existing]))
	idx := make([]uint64, c.reads)
	for j := range idx {
		if existing {
			idx[j] = rng.Uint64N(uint64(present))
		} else {
			idx[j] = uint64(c.keys) + rng.Uint64N(1<<62)
		}
	}
	lat := make([]time.Duration, c.reads)
	key := make([]byte, 0, scaleKeySize)
	got := make([]byte, 0, c.valueSize)
	want := make([]byte, 0, c.valueSize+8)
	before := db.Metrics()
	start := time.Now()
	for j, i := range idx {
		key = scaleKey(key, i)
		t := time.Now()
		var err error
		got, err = db.AppendValue(got[:0], key)
		lat[j] = time.Since(t)
		switch {
		case existing && err != nil:
			return getResult{}, fmt.Errorf("scale: WRONG DATA: get of loaded key %d: %w", i, err)
		case existing && !bytes.Equal(got, scaleValue(want, i, c.valueSize)):
			return getResult{}, fmt.Errorf("scale: WRONG DATA: key %d has a wrong %d-byte value", i, len(got))
		case !existing && !errors.Is(err, lsm.ErrNotFound):
			return getResult{}, fmt.Errorf("scale: WRONG DATA: get of missing key %d: %d bytes, %v", i, len(got), err)
		}
	}
	g := getResult{n: c.reads, elapsed: time.Since(start)}
	after := db.Metrics()
	g.cacheHits = after.BlockCacheHits - before.BlockCacheHits
	g.cacheMisses = after.BlockCacheMisses - before.BlockCacheMisses
	g.bloomSkips = after.BloomSkips - before.BloomSkips
	if len(lat) > 0 {
		slices.Sort(lat)
		q := func(f float64) time.Duration { return lat[min(len(lat)-1, int(f*float64(len(lat))))] }
		g.p50, g.p99, g.p999, g.max = q(0.5), q(0.99), q(0.999), lat[len(lat)-1]
	}
	return g, nil
}

// scanResult describes the full scan.
type scanResult struct {
	keys    int
	bytes   int64 // keys and values
	elapsed time.Duration
}

func (s scanResult) String() string {
	secs := s.elapsed.Seconds()
	return fmt.Sprintf("%d keys (%s of keys and values) in %v: %.0f keys/s, %.1f MB/s, every key and value checked",
		s.keys, human(s.bytes), s.elapsed.Round(time.Millisecond), float64(s.keys)/secs, float64(s.bytes)/secs/1e6)
}

// scanAll iterates over the whole store, checking that it holds exactly
// the present keys, in order, with their values.
func scanAll(c scaleConfig, db *lsm.DB, present int) (scanResult, error) {
	var s scanResult
	start := time.Now()
	it, err := db.NewIterator(nil)
	if err != nil {
		return s, err
	}
	var prev, want []byte
	for k, v := range it.All() {
		i, ok := keyIndex(k)
		switch {
		case !ok || i >= uint64(present):
			it.Close()
			return s, fmt.Errorf("scale: WRONG DATA: the scan found key %x, which the %d committed keys do not hold", k, present)
		case prev != nil && bytes.Compare(prev, k) >= 0:
			it.Close()
			return s, fmt.Errorf("scale: WRONG DATA: the scan returned key %x after %x", k, prev)
		case !bytes.Equal(v, scaleValue(want, i, c.valueSize)):
			it.Close()
			return s, fmt.Errorf("scale: WRONG DATA: the scan found a wrong %d-byte value for key %d", len(v), i)
		}
		prev = append(prev[:0], k...)
		s.keys++
		s.bytes += int64(len(k) + len(v))
	}
	err = errors.Join(it.Error(), it.Close())
	s.elapsed = time.Since(start)
	if err != nil {
		return s, fmt.Errorf("scale: scan: %w", err)
	}
	if s.keys != present {
		return s, fmt.Errorf("scale: WRONG DATA: the scan found %d keys, the committed offset says %d", s.keys, present)
	}
	return s, nil
}

// amplificationFigures are the write and space amplification of a run.
type amplificationFigures struct {
	live                              int64 // bytes of the present keys and values
	writeLoad, writeEnd, writeWithWAL float64
	spaceKill, spaceEnd               float64
	tablesPerGet                      int // L0 tables plus non-empty deeper levels
}

// amplification computes the write amplification over the tables the
// loader and the reopened store wrote, per user byte written, and the
// space amplification of the directory over the live keys and values.
func amplification(c scaleConfig, r *scaleResult) amplificationFigures {
	var a amplificationFigures
	entry := float64(scaleKeySize + c.valueSize)
	written := float64(r.load.last.Keys) * entry
	lm, em := r.load.last.Metrics, r.end
	loadTables := float64(lm.FlushBytes + lm.CompactionBytesOut)
	endTables := loadTables + float64(em.FlushBytes+em.CompactionBytesOut)
	a.live = int64(float64(r.present) * entry)
	a.writeLoad = loadTables / written
	a.writeEnd = endTables / written
	a.writeWithWAL = (endTables + float64(lm.CommitBytes)) / written
	a.spaceKill = float64(r.killDir.total) / float64(a.live)
	a.spaceEnd = float64(r.endDir.total) / float64(a.live)
	a.tablesPerGet = em.Levels[0].Tables
	for _, l := range em.Levels[1:] {
		if l.Tables > 0 {
			a.tablesPerGet++
		}
	}
	return a
}
