package lsm

import (
	"fmt"
	"iter"
	"strings"
	"time"
)

// Metrics is a snapshot of a DB's state and counters. It holds plain
// values; the caller owns it.
type Metrics struct {
	// Commits and CommitBytes count the commits written since Open and the
	// bytes of their records.
	Commits, CommitBytes int64
	// MemTables is the number of memtables (the active one and those
	// waiting to be flushed) and MemTableBytes the memory they hold.
	MemTables     int
	MemTableBytes int64
	// Rotations counts memtable rotations into new WAL files since Open.
	Rotations int64
	// WALNumber is the number of the WAL file being written and WALBytes
	// its size.
	WALNumber uint64
	WALBytes  int64
	// VisibleSeq is the sequence number of the newest visible commit.
	VisibleSeq uint64
	// OpenTxns and UncommittedBytes describe the open transactions.
	OpenTxns         int
	UncommittedBytes int64
	// CommittedOffsets is the number of offsets committed (-1 if they
	// could not be read).
	CommittedOffsets int
	// ReadOnly tells that a WAL, manifest, flush or compaction failure
	// stopped writes.
	ReadOnly bool

	// Levels describes each level of the LSM tree, L0 first.
	Levels [7]LevelMetrics
	// Flushes counts memtables flushed since Open, FlushBytes the bytes of
	// the tables they made.
	Flushes, FlushBytes int64
	// Compactions counts the compactions since Open (TrivialMoves of them
	// moved a table by a manifest edit); CompactionBytesIn and
	// CompactionBytesOut are the table bytes they read and wrote.
	Compactions, TrivialMoves             int64
	CompactionBytesIn, CompactionBytesOut int64
	// TablesDeleted counts table files deleted once obsolete.
	TablesDeleted int64
	// ManifestNumber is the manifest in use; ManifestRolls counts the new
	// manifests started since Open because the old one grew large.
	ManifestNumber uint64
	ManifestRolls  int64
	// Stalls counts the times writes stopped (too many memtables waiting,
	// or too many level-0 tables); StallTime is the time they waited, and
	// SlowdownTime the time commits were delayed while level 0 was deep.
	Stalls                  int64
	StallTime, SlowdownTime time.Duration
	// BlockCache describes the cache of data blocks.
	BlockCacheSize, BlockCacheCapacity int64
	BlockCacheHits, BlockCacheMisses   uint64
	// OpenTables is the number of tables in the table cache.
	OpenTables int
	// BloomSkips counts table lookups the Bloom filters answered without
	// reading a block.
	BloomSkips uint64
}

// LevelMetrics describes one level of the LSM tree.
type LevelMetrics struct {
	// Tables and Bytes are the level's tables and their total size.
	Tables int
	Bytes  int64
	// TargetBytes is the size past which the level is compacted (0 for
	// level 0, which compacts on its table count, and the last level).
	TargetBytes int64
}

// Metrics returns a snapshot of the DB's metrics. It is safe to call
// concurrently with anything; on a closed DB it returns zero values.
func (d *DB) Metrics() Metrics {
	if d.check() != nil {
		return Metrics{}
	}
	m := Metrics{
		Commits:            d.stats.commits.Load(),
		CommitBytes:        d.stats.commitBytes.Load(),
		Rotations:          d.stats.rotations.Load(),
		VisibleSeq:         d.visibleSeq.Load(),
		UncommittedBytes:   d.uncommitted.Load(),
		ReadOnly:           d.readOnly.Load() != nil,
		Flushes:            d.stats.flushes.Load(),
		FlushBytes:         d.stats.flushBytes.Load(),
		Compactions:        d.stats.compactions.Load(),
		TrivialMoves:       d.stats.trivialMoves.Load(),
		CompactionBytesIn:  d.stats.compactBytesIn.Load(),
		CompactionBytesOut: d.stats.compactOut.Load(),
		TablesDeleted:      d.stats.tablesDeleted.Load(),
		ManifestRolls:      d.stats.manifestRolls.Load(),
		Stalls:             d.stats.stalls.Load(),
		StallTime:          time.Duration(d.stats.stallNanos.Load()),
		SlowdownTime:       time.Duration(d.stats.slowdownNanos.Load()),
	}
	if offsets, err := d.CommittedOffsets(); err == nil {
		m.CommittedOffsets = len(offsets)
	} else {
		m.CommittedOffsets = -1
	}
	rs := d.loadReadState()
	for _, mem := range rs.mems {
		m.MemTables++
		m.MemTableBytes += mem.Size()
	}
	for level := range m.Levels {
		l := &m.Levels[level]
		l.Tables = rs.version.NumFiles(level)
		l.Bytes = int64(rs.version.LevelSize(level))
		if level > 0 && level < len(m.Levels)-1 {
			l.TargetBytes = int64(d.levelMaxBytes(level))
		}
	}
	rs.unref()
	// Read without d.commit's mutex, which a stalled writer holds.
	m.WALNumber = d.walNum.Load()
	if w := d.wal.Load(); w != nil {
		m.WALBytes = w.Size()
	}
	d.mu.Lock()
	if d.mu.manifest != nil {
		m.ManifestNumber = d.mu.manifest.FileNum()
	}
	d.mu.Unlock()
	d.txns.Lock()
	m.OpenTxns = len(d.txns.open)
	d.txns.Unlock()
	c := d.cache.Metrics()
	m.BlockCacheSize, m.BlockCacheCapacity, m.BlockCacheHits, m.BlockCacheMisses = c.Size, c.Capacity, c.Hits, c.Misses
	m.OpenTables = d.tables.Metrics().Open
	m.BloomSkips = d.tables.Stats().BloomSkips.Load()
	return m
}

// String formats the metrics: the shape of the LSM tree as a table, then
// the other figures.
func (m Metrics) String() string {
	var b strings.Builder
	b.WriteString("level  tables       bytes      target  score\n")
	var tables int
	var bytes int64
	for level, l := range m.Levels {
		score := "-"
		if l.TargetBytes > 0 {
			score = fmt.Sprintf("%.2f", float64(l.Bytes)/float64(l.TargetBytes))
		}
		fmt.Fprintf(&b, "L%-5d %6d %11s %11s  %5s\n", level, l.Tables, humanBytes(l.Bytes), humanBytes(l.TargetBytes), score)
		tables += l.Tables
		bytes += l.Bytes
	}
	fmt.Fprintf(&b, "total  %6d %11s\n", tables, humanBytes(bytes))
	fmt.Fprintf(&b, "memtables      %d (%s), %d rotations\n", m.MemTables, humanBytes(m.MemTableBytes), m.Rotations)
	fmt.Fprintf(&b, "wal            %06d.log (%s)\n", m.WALNumber, humanBytes(m.WALBytes))
	fmt.Fprintf(&b, "commits        %d (%s), visible seq %d\n", m.Commits, humanBytes(m.CommitBytes), m.VisibleSeq)
	fmt.Fprintf(&b, "flushes        %d (%s)\n", m.Flushes, humanBytes(m.FlushBytes))
	fmt.Fprintf(&b, "compactions    %d (%d moves), read %s, wrote %s\n", m.Compactions, m.TrivialMoves,
		humanBytes(m.CompactionBytesIn), humanBytes(m.CompactionBytesOut))
	fmt.Fprintf(&b, "stalls         %d (%s stalled, %s slowed down)\n", m.Stalls, m.StallTime, m.SlowdownTime)
	fmt.Fprintf(&b, "block cache    %s of %s, %d hits, %d misses\n", humanBytes(m.BlockCacheSize),
		humanBytes(m.BlockCacheCapacity), m.BlockCacheHits, m.BlockCacheMisses)
	fmt.Fprintf(&b, "tables         %d open, %d deleted, %d bloom skips\n", m.OpenTables, m.TablesDeleted, m.BloomSkips)
	fmt.Fprintf(&b, "manifest       MANIFEST-%06d, %d rolls\n", m.ManifestNumber, m.ManifestRolls)
	fmt.Fprintf(&b, "open txns      %d (%s uncommitted), %d committed offsets\n", m.OpenTxns, humanBytes(m.UncommittedBytes), m.CommittedOffsets)
	if m.ReadOnly {
		b.WriteString("read-only      after a failure; reopen to write\n")
	}
	return b.String()
}

// humanBytes formats n bytes with a binary unit.
func humanBytes(n int64) string {
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

// All returns an iterator over the view's keys and values in order, from
// the first. The slices are valid only until the next step; copy them to
// keep them. Check Error after the loop.
func (it *Iterator) All() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for ok := it.First(); ok; ok = it.Next() {
			if !yield(it.Key(), it.Value()) {
				return
			}
		}
	}
}
