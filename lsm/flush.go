package lsm

import (
	"errors"
	"fmt"
	"time"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/failpoint"
	"github.com/stratadb/strata/manifest"
	"github.com/stratadb/strata/memtable"
	"github.com/stratadb/strata/sstable"
)

// flushable is a full memtable waiting to be written as a level-0 table.
type flushable struct {
	mem *memtable.MemTable
	// logNum is the WAL holding the memtable's commits: it is obsolete once
	// the memtable is flushed (several memtables replayed from one WAL
	// share it).
	logNum uint64
	// lastSeq is the last sequence number given to a commit of the
	// memtable: the flush waits until it is visible, so that the table
	// never holds a version a reader at the visible sequence number could
	// still need beside a newer, unpublished one.
	lastSeq base.SeqNum
}

// A flush writes the oldest full memtable as one level-0 table, in the
// order TESTPLAN F5 requires: the table is written and synced, the
// directory synced, the version edit (the table, the new oldest WAL, the
// last sequence number it holds) appended to the manifest and synced, and
// only then is the memtable's WAL removed. The committed offsets are keys of
// the engine namespace: they go into the table with the data of their
// commits, and after a crash at any step they come back from the table or
// from the WAL, never from neither.

// flushLoop runs in the background until Close, flushing memtables in the
// order they filled.
func (d *DB) flushLoop() {
	defer d.bg.Done()
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		for !d.mu.closing && (len(d.mu.imm) == 0 || d.readOnly.Load() != nil) {
			d.mu.cond.Wait()
		}
		if d.mu.closing {
			return
		}
		d.mu.flushing = true
		err := d.flushOneLocked()
		d.mu.flushing = false
		if err != nil && !errors.Is(err, ErrClosed) {
			d.failLocked(fmt.Errorf("lsm: flush: %w", err))
			d.opts.Logger.Error("flush failed; the store is read-only until reopened", "error", err)
		}
		d.mu.cond.Broadcast()
	}
}

// flushOneLocked flushes d.mu.imm[0]. It releases d.mu while writing the
// table. d.mu is held.
func (d *DB) flushOneLocked() error {
	f := d.mu.imm[0]
	v := d.mu.current
	v.Ref()
	d.mu.Unlock()
	start := time.Now()
	meta, err := d.writeFlush(f, v)
	d.mu.Lock()
	d.deleteObsoleteLocked(v.Unref())
	if err != nil {
		return err
	}
	failpoint.Hit(failpoint.FlushAfterSSTSyncBeforeMani)
	edit := &manifest.VersionEdit{
		LogNumber:  d.mu.activeLog,
		LastSeqNum: max(d.mu.state.LastSeqNum, f.lastSeq),
	}
	if len(d.mu.imm) > 1 {
		edit.LogNumber = d.mu.imm[1].logNum
	}
	if meta != nil {
		edit.NewFiles = []manifest.NewFile{{Level: 0, Meta: meta}}
	}
	d.mu.imm = d.mu.imm[1:]
	if err := d.logAndApplyLocked(edit); err != nil {
		d.mu.imm = append([]*flushable{f}, d.mu.imm...)
		return err
	}
	d.stats.flushes.Add(1)
	d.mu.Unlock()
	failpoint.Hit(failpoint.FlushAfterManifestBeforeDelete)
	if f.logNum < edit.LogNumber {
		d.removeFile(logFileName(f.logNum))
	}
	d.mu.Lock()
	attrs := []any{"wal", logFileName(f.logNum), "entries", f.mem.Count(), "duration", time.Since(start).Round(time.Microsecond)}
	if meta != nil {
		d.stats.flushBytes.Add(int64(meta.Size))
		attrs = append(attrs, "table", tableFileName(meta.FileNum), "bytes", meta.Size)
	}
	d.opts.Logger.Info("flushed a memtable", attrs...)
	return nil
}

// writeFlush waits until every commit of f is visible and writes f's
// memtable as a table, returning its metadata, or nil when nothing of it
// survives (every key in a dropped namespace). v is the current version
// (for the dropped namespaces).
func (d *DB) writeFlush(f *flushable, v *manifest.Version) (*manifest.FileMetadata, error) {
	for d.visibleSeq.Load() < f.lastSeq {
		if p := d.readOnly.Load(); p != nil {
			return nil, *p
		}
		if d.closingFlag.Load() {
			return nil, ErrClosed
		}
		time.Sleep(50 * time.Microsecond)
	}
	var it memtable.Iter
	f.mem.InitIter(&it)
	ci := newCompactionIter(&it, d.snapshots.list(), false, v.IsDropped)
	out := d.newOutputs(0, 0)
	if err := out.copy(ci); err != nil {
		out.abort()
		return nil, err
	}
	// Every commit of f was applied before the copy began, so the copy
	// read every entry. A memtable that grew meanwhile would lose entries
	// once its WAL is removed: refuse, loudly.
	if read, n := ci.Stats().In, f.mem.Count(); read != int64(n) {
		out.abort()
		return nil, fmt.Errorf("lsm: flushing the memtable of WAL %s: read %d entries of %d: it changed during the flush",
			logFileName(f.logNum), read, n)
	}
	files, err := out.finish()
	if err != nil || len(files) == 0 {
		return nil, err
	}
	return files[0], nil
}

// outputs writes the tables of a flush or compaction: it cuts a new table
// where its splitter says, syncs each table as it closes it, and syncs the
// directory at the end. A failure removes every table it made.
type outputs struct {
	d       *DB
	level   int
	split   splitter
	w       *sstable.Writer
	num     uint64
	files   []*manifest.FileMetadata
	created []uint64
	bytes   int64
}

// newOutputs returns the writer of tables for level, cut at targetSize
// bytes (0: one table).
func (d *DB) newOutputs(level int, targetSize int64) *outputs {
	return &outputs{d: d, level: level, split: splitter{targetSize: targetSize}}
}

// copy writes every entry of ci to tables.
func (o *outputs) copy(ci *compactionIter) error {
	for ok := ci.First(); ok; ok = ci.Next() {
		if err := o.add(ci.Key(), ci.Value()); err != nil {
			return err
		}
		if o.d.closingFlag.Load() {
			return ErrClosed
		}
	}
	return ci.Error()
}

// add writes one entry, opening a table first if needed.
func (o *outputs) add(k base.InternalKey, value []byte) error {
	var written int64
	if o.w != nil {
		written = int64(o.w.EstimatedSize())
	}
	if o.split.shouldSplitBefore(k, written) {
		if err := o.closeTable(); err != nil {
			return err
		}
	}
	if o.w == nil {
		o.num = o.d.nextFileNum()
		name := tableFileName(o.num)
		f, err := o.d.fs.Create(o.d.path(name))
		if err != nil {
			return fmt.Errorf("creating table %s: %w", name, err)
		}
		o.created = append(o.created, o.num)
		o.w = sstable.NewWriter(f, o.num, o.d.opts.tableOptions())
	}
	return o.w.Add(k, value)
}

// closeTable finishes (and syncs) the table being written.
func (o *outputs) closeTable() error {
	w := o.w
	o.w = nil
	if err := w.Close(); err != nil {
		return fmt.Errorf("writing table %s: %w", tableFileName(o.num), err)
	}
	m := w.Metadata()
	o.files = append(o.files, &manifest.FileMetadata{
		FileNum:     m.FileNum,
		Size:        m.Size,
		Smallest:    m.Smallest,
		Largest:     m.Largest,
		SmallestSeq: m.SmallestSeq,
		LargestSeq:  m.LargestSeq,
		Namespaces:  m.Namespaces,
	})
	o.bytes += int64(m.Size)
	return nil
}

// finish closes the last table and syncs the directory, so that the tables
// are durable before an edit names them. It returns the tables' metadata.
func (o *outputs) finish() ([]*manifest.FileMetadata, error) {
	if o.w != nil {
		if err := o.closeTable(); err != nil {
			o.abort()
			return nil, err
		}
	}
	if len(o.files) > 0 {
		if err := o.d.syncDir(); err != nil {
			o.abort()
			return nil, fmt.Errorf("syncing the directory: %w", err)
		}
	}
	return o.files, nil
}

// abort closes and removes every table written.
func (o *outputs) abort() {
	if o.w != nil {
		o.w.Abort()
		o.w = nil
	}
	for _, num := range o.created {
		o.d.removeFile(tableFileName(num))
	}
	o.files, o.created = nil, nil
}

// Flush makes every memtable that holds data immutable and waits until all
// of them are written to level-0 tables (held in memory for an in-memory
// store).
func (d *DB) Flush() error {
	if err := d.check(); err != nil { // a nil DB has no mutex to take
		return err
	}
	if err := d.rotateForFlush(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.mu.imm) > 0 {
		if err := d.bgBlockedLocked(); err != nil {
			return err
		}
		d.mu.cond.Wait()
	}
	return nil
}

// rotateForFlush rotates the memtable unless it is unused. As in enqueue,
// the store is checked under d.commit's mutex (a check before taking it
// would let Close, or another writer's failed rotation, come in between and
// leave no memtable or no WAL to rotate), and a failed rotation turns the
// store read-only before the mutex is released, so that no writer finds
// the WAL it closed gone without the store having failed.
func (d *DB) rotateForFlush() error {
	d.commit.Lock()
	defer d.commit.Unlock()
	if err := d.writable(); err != nil {
		return err
	}
	if d.commit.slot.unused() {
		return nil
	}
	if err := d.rotateLocked(0); err != nil {
		return d.fail(err)
	}
	return nil
}

// bgBlockedLocked returns why waiting for background work is pointless:
// the DB failed or is closing. d.mu is held.
func (d *DB) bgBlockedLocked() error {
	if d.mu.closing {
		return ErrClosed
	}
	if p := d.readOnly.Load(); p != nil {
		return errors.Join(ErrReadOnly, *p)
	}
	return nil
}
