package lsm

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/stratadb/strata/internal/failpoint"
	"github.com/stratadb/strata/internal/invariants"
	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/manifest"
	"github.com/stratadb/strata/memtable"
	"github.com/stratadb/strata/wal"
)

// A store directory holds:
//
//	LOCK              the lock file of the open DB
//	CURRENT           names the manifest in use (see package manifest)
//	MANIFEST-000007   the manifest: which tables make up the store
//	000009.log        write-ahead logs, one per memtable
//	000012.sst        sorted tables
//
// Manifests, WALs and tables share one sequence of file numbers.
const tableSuffix = ".sst"

// salvagedSuffix ends the copies of the WAL files Options.Salvage dropped.
const salvagedSuffix = ".salvaged"

// tableFileName names table number num.
func tableFileName(num uint64) string { return fmt.Sprintf("%06d%s", num, tableSuffix) }

// parseNumbered returns the number of a file name made of at least six
// digits and suffix.
func parseNumbered(name, suffix string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, suffix)
	if !ok || len(s) < 6 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// newManifestRecordWriter frames manifest records like WAL records.
func newManifestRecordWriter(f vfs.File, num uint64) manifest.RecordWriter {
	return wal.NewWriter(f, num)
}

// newManifestRecordReader reads manifest records; a torn tail is the end.
func newManifestRecordReader(f vfs.File, num uint64, name string) manifest.RecordReader {
	return wal.NewReader(f, num, name, true)
}

// readState is what a read consults: the memtables, newest first, and the
// version of the tables. It is immutable; a new one is installed whenever a
// memtable rotates, a flush or compaction lands or a namespace changes.
// Readers take a reference (loadReadState) for as long as they use it, so
// that the tables of its version are not deleted under them.
type readState struct {
	d       *DB
	refs    atomic.Int32
	mems    []*memtable.MemTable
	version *manifest.Version
}

// loadReadState returns the current read state with a reference the caller
// must drop with unref.
func (d *DB) loadReadState() *readState {
	for {
		rs := d.rs.Load()
		// The DB holds a reference to the current state until it installs
		// the next one; a state whose count reached zero is being replaced.
		if n := rs.refs.Load(); n > 0 && rs.refs.CompareAndSwap(n, n+1) {
			return rs
		}
	}
}

// unref drops a reference; the last one releases the version, deleting the
// tables no other version holds. The caller does not hold d.mu.
func (rs *readState) unref() {
	if rs.release() {
		rs.d.deleteObsolete(rs.version.Unref())
	}
}

// unrefLocked is unref for a caller holding d.mu.
func (rs *readState) unrefLocked() {
	if rs.release() {
		rs.d.deleteObsoleteLocked(rs.version.Unref())
	}
}

// release drops a reference and reports whether it was the last.
func (rs *readState) release() bool {
	n := rs.refs.Add(-1)
	if invariants.Enabled && n < 0 {
		panic("lsm: read state released more often than referenced")
	}
	return n == 0
}

// installReadStateLocked makes mems (newest first) and the current version
// the state readers load, and drops the DB's reference to the previous
// state. d.mu is held.
func (d *DB) installReadStateLocked(mems []*memtable.MemTable) {
	rs := &readState{d: d, mems: mems, version: d.mu.current}
	rs.version.Ref()
	rs.refs.Store(1)
	if prev := d.rs.Swap(rs); prev != nil {
		prev.unrefLocked()
	}
}

// memsLocked returns the memtables readers must consult, newest first: the
// active one and those waiting to be flushed. d.mu is held.
func (d *DB) memsLocked(active *memtable.MemTable) []*memtable.MemTable {
	mems := make([]*memtable.MemTable, 0, len(d.mu.imm)+1)
	mems = append(mems, active)
	for i := len(d.mu.imm) - 1; i >= 0; i-- {
		mems = append(mems, d.mu.imm[i].mem)
	}
	return mems
}

// logAndApplyLocked validates edit against the current version, appends it
// to the manifest (synced) and installs the version it makes, with a read
// state. d.mu is held.
//
// If the manifest append fails, the edit may or may not be durable: the DB
// turns read-only (TESTPLAN F9) and the version built for the edit is
// dropped without releasing its tables, which must not be deleted.
func (d *DB) logAndApplyLocked(edit *manifest.VersionEdit) error {
	if d.mu.manifest == nil {
		return ErrClosed // Close released it
	}
	if p := d.readOnly.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrReadOnly, *p)
	}
	if d.mu.manifest.ShouldRoll(d.opts.MaxManifestFileSize) {
		if err := d.rollManifestLocked(); err != nil {
			return d.failLocked(err)
		}
	}
	// Every file made so far has a smaller number (manifest rule 5).
	edit.NextFileNumber = d.fileNum.Load()
	b := manifest.NewBuilder(d.mu.current)
	if err := b.Apply(edit); err != nil {
		return fmt.Errorf("lsm: invalid version edit: %w", err)
	}
	v, err := b.Build()
	if err != nil {
		return fmt.Errorf("lsm: invalid version edit: %w", err)
	}
	s, err := d.mu.state.Apply(edit)
	if err == nil {
		err = manifest.Validate(v, s)
	}
	if err != nil {
		v.Unref()
		return fmt.Errorf("lsm: invalid version edit: %w", err)
	}
	failpoint.Hit(failpoint.ManifestBeforeAppend)
	if err := d.mu.manifest.Append(edit); err != nil {
		return d.failLocked(fmt.Errorf("lsm: manifest: %w", err))
	}
	if len(edit.DeletedFiles) > 0 {
		failpoint.Hit(failpoint.CompactionAfterManifestBeforeD)
	}
	if invariants.Enabled {
		d.checkNewTablesLocked(edit)
	}
	old := d.mu.current
	d.mu.current, d.mu.state = v, s
	d.installReadStateLocked(d.memsLocked(d.rs.Load().mems[0]))
	d.updateSlowdownLocked()
	d.mu.cond.Broadcast()
	d.deleteObsoleteLocked(old.Unref())
	return nil
}

// rollManifestLocked starts a new manifest holding a snapshot of the
// current version, makes it current, and deletes the old one. d.mu is held.
func (d *DB) rollManifestLocked() error {
	failpoint.Hit(failpoint.ManifestRollBeforeCreate)
	old := d.mu.manifest
	if err := d.startManifestLocked(); err != nil {
		return err
	}
	d.stats.manifestRolls.Add(1)
	failpoint.Hit(failpoint.ManifestRollAfterCreate)
	if err := old.Abandon(); err != nil {
		d.opts.Logger.Warn("closing the old manifest failed", "file", manifest.FileName(old.FileNum()), "error", err)
	}
	d.removeFile(manifest.FileName(old.FileNum()))
	d.opts.Logger.Info("started a new manifest", "file", manifest.FileName(d.mu.manifest.FileNum()))
	return nil
}

// startManifestLocked writes a new manifest holding a snapshot of the
// current version and state, makes it current (CURRENT names it) and the
// one edits go to. At Open it replaces the loaded manifest, whose tail may
// be torn and is never appended to. d.mu is held.
func (d *DB) startManifestLocked() error {
	num := d.nextFileNum()
	s := d.mu.state
	s.NextFileNumber = max(s.NextFileNumber, num+1)
	w, err := manifest.Create(d.fs, d.dirname, num, newManifestRecordWriter, d.mu.current, s)
	if err != nil {
		return fmt.Errorf("lsm: starting manifest %d: %w", num, err)
	}
	d.mu.manifest, d.mu.state = w, s
	return nil
}

// nextFileNum allocates a file number.
func (d *DB) nextFileNum() uint64 { return d.fileNum.Add(1) - 1 }

// deleteObsolete deletes the files of tables no version holds any more.
func (d *DB) deleteObsolete(files []*manifest.FileMetadata) {
	if len(files) == 0 {
		return
	}
	d.mu.Lock()
	d.deleteObsoleteLocked(files)
	d.mu.Unlock()
}

// deleteObsoleteLocked deletes the files of tables no version holds any
// more, unless the DB is closed (the directory may belong to another
// process by then): the next Open removes what the manifest
// does not name. d.mu is held.
func (d *DB) deleteObsoleteLocked(files []*manifest.FileMetadata) {
	if d.mu.closed {
		return
	}
	for _, f := range files {
		d.tables.Evict(f.FileNum)
		d.removeFile(tableFileName(f.FileNum))
		d.stats.tablesDeleted.Add(1)
		failpoint.Hit(failpoint.GCMidDelete)
	}
}

// removeFile removes a file of the store directory; a failure is only
// logged (the next Open removes files the store does not use).
func (d *DB) removeFile(name string) {
	if err := d.fs.Remove(d.path(name)); err != nil {
		d.opts.Logger.Warn("removing a file failed", "file", name, "error", err)
	}
}

// failLocked is fail for a caller holding d.mu: it also wakes the writers
// stalled on d.mu.cond.
func (d *DB) failLocked(err error) error {
	err = d.setFailed(err)
	d.mu.cond.Broadcast()
	return err
}
