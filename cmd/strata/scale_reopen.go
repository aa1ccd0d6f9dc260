package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/stratadb/strata/lsm"
)

// dirStats sums the files of a store directory by kind.
type dirStats struct {
	total, tables, wals, other int64
	numTables, numWALs         int
	sizes                      map[string]int64 // by file name
}

func (s dirStats) String() string {
	return fmt.Sprintf("%s in %d tables (%s), %d WAL files (%s) and the rest (%s)",
		human(s.total), s.numTables, human(s.tables), s.numWALs, human(s.wals), human(s.other))
}

// statDir returns the sizes of the files in dir.
func statDir(dir string) (dirStats, error) {
	s := dirStats{sizes: make(map[string]int64)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return s, err
	}
	for _, e := range entries {
		fi, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile by the store's background work
		} else if err != nil {
			return s, err
		}
		n := fi.Size()
		s.sizes[e.Name()] = n
		s.total += n
		switch filepath.Ext(e.Name()) {
		case ".sst":
			s.tables += n
			s.numTables++
		case ".log":
			s.wals += n
			s.numWALs++
		default:
			s.other += n
		}
	}
	return s, nil
}

// reopenResult describes the Open of the killed store.
type reopenResult struct {
	elapsed   time.Duration
	walFiles  int
	walBytes  int64 // the replayed WAL files' sizes before Open
	records   int64 // commit records replayed
	tornBytes int64 // dropped from the newest WAL's tail
}

// openKilled opens the store the loader left and times it. The WAL files
// replayed come from the engine's recovery log messages.
func openKilled(c scaleConfig) (*lsm.DB, reopenResult, error) {
	var r reopenResult
	before, err := statDir(c.dir)
	if err != nil {
		return nil, r, err
	}
	rec := &recorder{}
	start := time.Now()
	db, err := lsm.Open(c.dir, c.options(slog.New(rec)))
	r.elapsed = time.Since(start)
	if err != nil {
		return nil, r, fmt.Errorf("scale: reopening the killed store: %w", err)
	}
	for _, e := range rec.take() {
		switch {
		case strings.HasPrefix(e.msg, "recovery replayed a WAL"):
			r.walFiles++
			r.walBytes += before.sizes[filepath.Base(e.attrs["file"].String())]
			r.records += e.attrs["records"].Int64()
		case strings.HasPrefix(e.msg, "recovery dropped the torn tail"):
			r.tornBytes += e.attrs["dropped_bytes"].Int64()
		}
	}
	return db, r, nil
}

// logEntry is one engine log message.
type logEntry struct {
	msg   string
	attrs map[string]slog.Value
}

// recorder is a slog.Handler that keeps the messages logged during Open.
// Later messages (flushes, compactions) are dropped once take is called.
type recorder struct {
	mu      sync.Mutex
	entries []logEntry
	done    bool
}

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return nil
	}
	e := logEntry{msg: r.Message, attrs: make(map[string]slog.Value)}
	r.Attrs(func(a slog.Attr) bool {
		e.attrs[a.Key] = a.Value.Resolve()
		return true
	})
	h.entries = append(h.entries, e)
	return nil
}

func (h *recorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recorder) WithGroup(string) slog.Handler      { return h }

// take returns the messages so far and stops recording.
func (h *recorder) take() []logEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.done = true
	return h.entries
}

// checkCommitted reads the committed offset: the keys up to it must all be
// there and none after it (a transaction is all or nothing), and at least
// as many as the loader had reported committed.
func checkCommitted(c scaleConfig, db *lsm.DB, r *scaleResult) error {
	off, err := db.CommittedOffset(scaleStream)
	if err != nil {
		return fmt.Errorf("scale: WRONG DATA: no committed offset after %d reported commits: %w", r.load.last.Txns, err)
	}
	r.present = int(off) + 1
	r.txns = (r.present + c.batch - 1) / c.batch
	switch {
	case r.present < r.load.last.Keys:
		return fmt.Errorf("scale: WRONG DATA: committed offset %d, but the loader had committed keys up to %d", off, r.load.last.Keys-1)
	case r.present > c.keys:
		return fmt.Errorf("scale: WRONG DATA: committed offset %d past the %d keys loaded", off, c.keys)
	case r.present%c.batch != 0 && r.present != c.keys:
		return fmt.Errorf("scale: WRONG DATA: committed offset %d does not end a transaction", off)
	}
	return spotCheck(c, db, r.present)
}

// spotCheck reads the keys at both ends of the loaded range, the first
// transaction after it (which must be absent) and a sample in between.
func spotCheck(c scaleConfig, db *lsm.DB, present int) error {
	var idx []int
	for i := range min(present, 100) {
		idx = append(idx, i, present-1-i)
	}
	for i := 1; i < 1000; i++ {
		idx = append(idx, int(mix(uint64(c.seed)+uint64(i))%uint64(present)))
	}
	var key, want, got []byte
	for _, i := range idx {
		key, want = scaleKey(key, uint64(i)), scaleValue(want, uint64(i), c.valueSize)
		var err error
		if got, err = db.AppendValue(got[:0], key); err != nil || !bytes.Equal(got, want) {
			return fmt.Errorf("scale: WRONG DATA: key %d (%x) of the %d committed: %d-byte value, %v", i, key, present, len(got), err)
		}
	}
	for i := present; i < min(present+c.batch, c.keys); i++ {
		if _, err := db.AppendValue(got[:0], scaleKey(key, uint64(i))); !errors.Is(err, lsm.ErrNotFound) {
			return fmt.Errorf("scale: WRONG DATA: key %d is past the committed offset %d, but Get says %v", i, present-1, err)
		}
	}
	return nil
}

// settle waits, at most max, until the store has no flush or compaction
// to do: every level within its target, level 0 below the compaction
// threshold, and no compaction for a second.
func settle(db *lsm.DB, max time.Duration) (time.Duration, bool) {
	start := time.Now()
	var quietSince time.Time
	var compactions int64 = -1
	for time.Since(start) < max {
		m := db.Metrics()
		if !withinTargets(m) || m.Compactions != compactions {
			quietSince, compactions = time.Time{}, m.Compactions
		} else if quietSince.IsZero() {
			quietSince = time.Now()
		} else if time.Since(quietSince) >= time.Second {
			return quietSince.Sub(start), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start), false
}

// l0CompactionThreshold is lsm's default Options.L0CompactionThreshold.
const l0CompactionThreshold = 4

// withinTargets reports whether no level calls for a compaction.
func withinTargets(m lsm.Metrics) bool {
	if m.MemTables > 1 || m.Levels[0].Tables >= l0CompactionThreshold {
		return false
	}
	for _, l := range m.Levels[1:] {
		if l.TargetBytes > 0 && l.Bytes > l.TargetBytes {
			return false
		}
	}
	return true
}
