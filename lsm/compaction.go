package lsm

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stratadb/strata/internal/failpoint"
	"github.com/stratadb/strata/manifest"
)

// Leveled compaction. Level 0 holds the flushed tables, which may overlap;
// when it holds L0CompactionThreshold of them, all of them are merged with
// the level-1 tables they overlap into new level-1 tables. Each deeper
// level L has a target size, LevelBaseBytes * LevelMultiplier^(L-1); the
// level furthest over its target (by ratio) moves one table, taken round
// robin through the key space, into the level below, merged with the
// tables it overlaps there. A table with nothing to merge below is moved
// by a manifest edit alone. One compaction runs at a time, beside flushes.

// compaction is one picked compaction.
type compaction struct {
	level, outputLevel int
	inputs             [2][]*manifest.FileMetadata // from level, from outputLevel
	smallest, largest  []byte                      // user-key range of the inputs
	bottommost         bool                        // no older data below the output
	reason             string
	// dropped, for a compaction of level -1, are tables that hold keys of
	// dropped namespaces only: they are deleted, nothing is read.
	dropped []manifest.DeletedFile
}

// levelMaxBytes returns the target size of level (1 or deeper).
func (d *DB) levelMaxBytes(level int) float64 {
	size := float64(d.opts.LevelBaseBytes)
	for l := 1; l < level; l++ {
		size *= float64(d.opts.LevelMultiplier)
	}
	return size
}

// pickCompactionLocked returns the most urgent compaction of v, or nil when
// every level is within its target. d.mu is held.
func (d *DB) pickCompactionLocked(v *manifest.Version) *compaction {
	if c := pickDropped(v, true); c != nil {
		return c
	}
	best, bestScore := -1, 1.0
	if n := v.NumFiles(0); n >= d.opts.L0CompactionThreshold {
		best, bestScore = 0, float64(n)/float64(d.opts.L0CompactionThreshold)
	}
	for level := 1; level < manifest.NumLevels-1; level++ {
		if score := float64(v.LevelSize(level)) / d.levelMaxBytes(level); score > bestScore {
			best, bestScore = level, score
		}
	}
	if best < 0 {
		return pickDropped(v, false)
	}
	if best == 0 {
		return d.newCompaction(v, 0, v.Files(0), fmt.Sprintf("L0 holds %d tables", v.NumFiles(0)))
	}
	f := d.nextTableToCompactLocked(v, best)
	return d.newCompaction(v, best, []*manifest.FileMetadata{f},
		fmt.Sprintf("L%d at %.2fx its target size", best, bestScore))
}

// pickDropped returns a compaction that reclaims the space of dropped
// namespaces: with whole true, one that deletes every table holding keys of
// dropped namespaces only (a manifest edit, no I/O); otherwise one that
// rewrites in place a table of level 1 or deeper holding some. It returns
// nil when there is none.
func pickDropped(v *manifest.Version, whole bool) *compaction {
	if len(v.DroppedNamespaces()) == 0 {
		return nil
	}
	var c *compaction
	for level := range manifest.NumLevels {
		for _, f := range v.Files(level) {
			all, some := droppedIn(v, f)
			switch {
			case whole && all:
				if c == nil {
					c = &compaction{level: -1, outputLevel: -1, reason: "tables of dropped namespaces"}
				}
				c.dropped = append(c.dropped, manifest.DeletedFile{Level: level, FileNum: f.FileNum})
			case !whole && some && level > 0:
				c = &compaction{level: level, outputLevel: level, reason: "table holds dropped namespaces"}
				c.inputs[0] = []*manifest.FileMetadata{f}
				c.smallest, c.largest = f.Smallest.UserKey, f.Largest.UserKey
				return c
			}
		}
	}
	return c
}

// droppedIn reports whether all, or some, of the namespaces with keys in f
// are dropped (neither when f does not list its namespaces).
func droppedIn(v *manifest.Version, f *manifest.FileMetadata) (all, some bool) {
	all = len(f.Namespaces) > 0
	for _, id := range f.Namespaces {
		if v.IsDropped(id) {
			some = true
		} else {
			all = false
		}
	}
	return all, some
}

// nextTableToCompactLocked returns the table of level after the one last
// compacted out of it, wrapping around. d.mu is held.
func (d *DB) nextTableToCompactLocked(v *manifest.Version, level int) *manifest.FileMetadata {
	files := v.Files(level)
	ptr := d.mu.compactPointer[level]
	for _, f := range files {
		if ptr == nil || bytes.Compare(f.Smallest.UserKey, ptr) > 0 {
			return f
		}
	}
	return files[0]
}

// newCompaction completes a compaction of inputs from level into the next
// level: the overlapping tables there, and whether the output is
// bottommost.
func (d *DB) newCompaction(v *manifest.Version, level int, inputs []*manifest.FileMetadata, reason string) *compaction {
	c := &compaction{level: level, outputLevel: level + 1, reason: reason}
	c.inputs[0] = inputs
	c.smallest, c.largest = keyRange(inputs)
	c.inputs[1] = v.Overlaps(c.outputLevel, c.smallest, c.largest)
	lo, hi := keyRange(c.inputs[1])
	if lo != nil && bytes.Compare(lo, c.smallest) < 0 {
		c.smallest = lo
	}
	if hi != nil && bytes.Compare(hi, c.largest) > 0 {
		c.largest = hi
	}
	c.bottommost = true
	for l := c.outputLevel + 1; l < manifest.NumLevels; l++ {
		if len(v.Overlaps(l, c.smallest, c.largest)) > 0 {
			c.bottommost = false
		}
	}
	return c
}

// keyRange returns the smallest and largest user keys of files (nil for
// none).
func keyRange(files []*manifest.FileMetadata) (smallest, largest []byte) {
	for _, f := range files {
		if smallest == nil || bytes.Compare(f.Smallest.UserKey, smallest) < 0 {
			smallest = f.Smallest.UserKey
		}
		if largest == nil || bytes.Compare(f.Largest.UserKey, largest) > 0 {
			largest = f.Largest.UserKey
		}
	}
	return smallest, largest
}

// trivialMove reports whether the compaction can move its one input table
// to the output level by a manifest edit: nothing to merge it with, and no
// tombstone it could drop (bottommost outputs are rewritten).
func (c *compaction) trivialMove() bool {
	return c.outputLevel > c.level && len(c.inputs[0]) == 1 && len(c.inputs[1]) == 0 && !c.bottommost
}

// compactLoop runs in the background until Close, compacting while a level
// is over its target.
func (d *DB) compactLoop() {
	defer d.bg.Done()
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		var c *compaction
		for {
			if d.mu.closing {
				return
			}
			if !d.mu.compacting && d.readOnly.Load() == nil {
				if c = d.pickCompactionLocked(d.mu.current); c != nil {
					break
				}
			}
			d.mu.cond.Wait()
		}
		if err := d.compactLocked(c); err != nil && !errors.Is(err, ErrClosed) {
			d.failLocked(fmt.Errorf("lsm: compaction: %w", err))
			d.opts.Logger.Error("compaction failed; the store is read-only until reopened", "error", err)
		}
	}
}

// compactLocked runs c, releasing d.mu while it merges. d.mu is held.
func (d *DB) compactLocked(c *compaction) error {
	d.mu.compacting = true
	defer func() {
		d.mu.compacting = false
		d.mu.cond.Broadcast()
	}()
	if c.level > 0 && c.outputLevel > c.level {
		d.mu.compactPointer[c.level] = slices.Clone(c.inputs[0][len(c.inputs[0])-1].Largest.UserKey)
	}
	edit := &manifest.VersionEdit{DeletedFiles: c.dropped}
	for i, files := range c.inputs {
		for _, f := range files {
			edit.DeletedFiles = append(edit.DeletedFiles, manifest.DeletedFile{Level: min(c.level+i, c.outputLevel), FileNum: f.FileNum})
		}
	}
	start := time.Now()
	var in, out int64
	switch {
	case c.level < 0: // only deletions
	case c.trivialMove():
		edit.NewFiles = []manifest.NewFile{{Level: c.outputLevel, Meta: c.inputs[0][0]}}
		d.stats.trivialMoves.Add(1)
	default:
		v := d.mu.current
		v.Ref()
		d.mu.Unlock()
		files, err := d.runCompaction(c, v)
		d.mu.Lock()
		d.deleteObsoleteLocked(v.Unref())
		if err != nil {
			return err
		}
		failpoint.Hit(failpoint.CompactionAfterOutputsBeforeM)
		for _, f := range files {
			edit.NewFiles = append(edit.NewFiles, manifest.NewFile{Level: c.outputLevel, Meta: f})
			out += int64(f.Size)
		}
		for _, files := range c.inputs {
			for _, f := range files {
				in += int64(f.Size)
			}
		}
	}
	if err := d.logAndApplyLocked(edit); err != nil {
		return err
	}
	d.stats.compactions.Add(1)
	d.stats.compactBytesIn.Add(in)
	d.stats.compactOut.Add(out)
	d.opts.Logger.Info("compacted", "from", fmt.Sprintf("L%d", c.level), "to", fmt.Sprintf("L%d", c.outputLevel),
		"reason", c.reason, "inputs", len(c.inputs[0])+len(c.inputs[1]), "outputs", len(edit.NewFiles),
		"bytes_in", in, "bytes_out", out, "moved", c.trivialMove(), "duration", time.Since(start).Round(time.Microsecond))
	return nil
}

// runCompaction merges the inputs of c, read from version v, into new
// tables of the output level, which it returns (synced, the directory
// synced). It reads around the block cache, which it would otherwise fill
// with blocks no reader asked for.
func (d *DB) runCompaction(c *compaction, v *manifest.Version) ([]*manifest.FileMetadata, error) {
	var srcs []internalIterator
	ts := tableSources{opener: d.tables, noCacheFill: true}
	defer ts.close()
	for i, files := range c.inputs {
		if c.level+i > 0 && len(files) > 0 {
			srcs = append(srcs, ts.addLevel(files, nil, nil))
			continue
		}
		for _, f := range files {
			it, err := ts.addTable(f)
			if err != nil {
				return nil, err
			}
			srcs = append(srcs, it)
		}
	}
	var m mergingIter
	m.init(srcs)
	ci := newCompactionIter(&m, d.snapshots.list(), c.bottommost, v.IsDropped)
	out := d.newOutputs(c.outputLevel, d.opts.TargetFileSize)
	if err := out.copy(ci); err != nil {
		out.abort()
		return nil, err
	}
	return out.finish()
}

// Compact flushes every memtable, then compacts each level into the next,
// down to the deepest level holding tables, so that all the data ends up
// in one level: tombstones and shadowed versions no snapshot needs are
// dropped, and dropped namespaces reclaimed. It waits for a running
// background compaction first.
func (d *DB) Compact() error {
	if err := d.Flush(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for level := 0; level < manifest.NumLevels-1; level++ {
		if err := d.waitCompactionLocked(); err != nil {
			return err
		}
		v := d.mu.current
		if v.NumFiles(level) == 0 || !deeperFiles(v, level) && level > 0 {
			continue
		}
		c := d.newCompaction(v, level, v.Files(level), "manual")
		if err := d.manualLocked(c); err != nil {
			return err
		}
	}
	for _, whole := range []bool{true, false} {
		for {
			if err := d.waitCompactionLocked(); err != nil {
				return err
			}
			c := pickDropped(d.mu.current, whole)
			if c == nil {
				break
			}
			if err := d.manualLocked(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// manualLocked runs a compaction for Compact. d.mu is held.
func (d *DB) manualLocked(c *compaction) error {
	if err := d.compactLocked(c); err != nil {
		if !errors.Is(err, ErrClosed) {
			return d.failLocked(fmt.Errorf("lsm: compaction: %w", err))
		}
		return err
	}
	return nil
}

// waitCompactionLocked waits until no compaction runs. d.mu is held.
func (d *DB) waitCompactionLocked() error {
	for d.mu.compacting {
		if err := d.bgBlockedLocked(); err != nil {
			return err
		}
		d.mu.cond.Wait()
	}
	return d.bgBlockedLocked()
}

// deeperFiles reports whether any level below level holds tables.
func deeperFiles(v *manifest.Version, level int) bool {
	for l := level + 1; l < manifest.NumLevels; l++ {
		if v.NumFiles(l) > 0 {
			return true
		}
	}
	return false
}
