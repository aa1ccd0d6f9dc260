package lsm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/failpoint"
	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/manifest"
	"github.com/stratadb/strata/memtable"
	"github.com/stratadb/strata/sstable"
	"github.com/stratadb/strata/txn"
	"github.com/stratadb/strata/wal"
)

// Files of a store directory.
const (
	lockFileName = "LOCK"
	logSuffix    = ".log"
)

// logFileName names WAL number num.
func logFileName(num uint64) string { return fmt.Sprintf("%06d%s", num, logSuffix) }

// parseLogFileName returns the number of a WAL file name.
func parseLogFileName(name string) (uint64, bool) { return parseNumbered(name, logSuffix) }

// Open opens the store in dirname, creating the directory and an empty store
// if needed: it loads the manifest (which tables make up the store) and
// recovers every committed transaction from the WAL files the tables do not
// cover. A nil opts means the defaults. With Options.InMemory, dirname only
// names the store in errors.
//
// Only one DB may have a directory open at a time: a second Open fails with
// an error wrapping ErrLocked. Damage to the WAL other than a torn tail of
// the newest file, or to the manifest, fails Open with an error wrapping
// ErrCorruption that names the file and offset. Open's time is bounded by
// the WAL files still to replay and the manifest, not by the size of the
// store: tables are opened when first read. The WAL to replay holds at
// most the memtables not yet flushed, up to MemTableStopWritesThreshold
// times MemTableSize (256 MiB with the defaults: a few seconds; see
// docs/SCALE.md for measured reopen times).
func Open(dirname string, opts *Options) (*DB, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if dirname == "" {
		if !o.InMemory {
			return nil, errors.New("lsm: Open needs a directory name")
		}
		dirname = "strata"
	}
	d := &DB{dirname: dirname, opts: o, fs: o.FS}
	d.txns.open = make(map[*Txn]struct{})
	d.mu.cond.L = &d.mu.Mutex
	if o.InMemory {
		// Tables and the manifest live in a filesystem in memory; commits
		// skip the WAL.
		d.fs = vfs.NewMem()
	}
	if err := d.lockDir(); err != nil {
		return nil, err
	}
	d.cache = sstable.NewCache(o.BlockCacheSize)
	d.tables = sstable.NewTableCache(d.fs, d.dirname, o.MaxOpenTables, d.cache, tableFileName)
	if err := d.recover(); err != nil {
		if d.commit.log != nil {
			d.commit.log.Close()
		}
		if d.mu.manifest != nil {
			d.mu.manifest.Close()
		}
		d.tables.Close()
		d.lock.Close()
		return nil, fmt.Errorf("lsm: open %s: %w", dirname, err)
	}
	d.bg.Add(1)
	go d.flushLoop()
	if !o.DisableAutomaticCompactions {
		d.bg.Add(1)
		go d.compactLoop()
	}
	return d, nil
}

// lockDir creates the directory if needed and takes its lock file.
func (d *DB) lockDir() error {
	fi, err := d.fs.Stat(d.dirname)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("lsm: open %s: not a directory", d.dirname)
	case err != nil:
		if err := d.makeDir(); err != nil {
			return fmt.Errorf("lsm: open %s: %w", d.dirname, err)
		}
	}
	lock, err := d.fs.Lock(d.path(lockFileName))
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return fmt.Errorf("lsm: open %s: %w (%w)", d.dirname, ErrLocked, err)
		}
		return fmt.Errorf("lsm: open %s: locking: %w", d.dirname, err)
	}
	d.lock = lock
	return nil
}

// makeDir creates the store directory and any missing parents, and syncs
// the parent of each directory it created, so that the store's directory
// entry is durable before any commit is acknowledged.
func (d *DB) makeDir() error {
	var created []string
	for dir := filepath.Clean(d.dirname); ; {
		if _, err := d.fs.Stat(dir); err == nil {
			break
		}
		created = append(created, dir)
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if err := d.fs.MkdirAll(d.dirname, 0o755); err != nil {
		return err
	}
	for i := len(created) - 1; i >= 0; i-- {
		if parent := filepath.Dir(created[i]); parent != created[i] {
			if err := vfs.SyncDir(d.fs, parent); err != nil {
				return fmt.Errorf("syncing directory %s: %w", parent, err)
			}
		}
	}
	return nil
}

func (d *DB) path(name string) string { return d.fs.PathJoin(d.dirname, name) }

// storeFiles lists the files of a store directory by kind.
type storeFiles struct {
	logs, tables, manifests []uint64 // sorted
	current                 bool
	maxNum                  uint64
}

// listStore lists the store directory.
func (d *DB) listStore() (storeFiles, error) {
	var sf storeFiles
	names, err := d.fs.List(d.dirname)
	if err != nil {
		return sf, err
	}
	for _, name := range names {
		var n uint64
		var ok bool
		if n, ok = parseLogFileName(name); ok {
			sf.logs = append(sf.logs, n)
		} else if n, ok = parseNumbered(name, tableSuffix); ok {
			sf.tables = append(sf.tables, n)
		} else if n, ok = manifest.ParseFileName(name); ok {
			sf.manifests = append(sf.manifests, n)
		} else if name == manifest.CurrentName {
			sf.current = true
		} else if n, ok = parseNumbered(name, logSuffix+salvagedSuffix); ok {
			// A WAL salvage set aside: its number is never given out
			// again, so a later salvage never overwrites the copy.
		}
		if ok {
			sf.maxNum = max(sf.maxNum, n)
		}
	}
	slices.Sort(sf.logs)
	slices.Sort(sf.tables)
	slices.Sort(sf.manifests)
	return sf, nil
}

// recover loads the manifest (or starts the store's first one), replays the
// WAL files it does not cover into memtables queued for flush, drops a torn
// tail of the newest one, starts a new manifest and a new WAL file, and
// removes the files the store no longer uses.
func (d *DB) recover() error {
	sf, err := d.listStore()
	if err != nil {
		return err
	}
	v, s, err := d.loadManifest(sf)
	if err != nil {
		return err
	}
	d.mu.current, d.mu.state = v, s
	d.fileNum.Store(max(s.NextFileNumber, sf.maxNum+1))
	var logs []uint64
	for _, num := range sf.logs {
		if num >= s.LogNumber {
			logs = append(logs, num)
		}
	}
	newest, err := d.newestLog(logs)
	if err != nil {
		return err
	}
	r := replay{d: d, lastSeq: s.LastSeqNum, floor: s.LastSeqNum}
	var empty []uint64
	for i, num := range logs {
		if r.salvaged {
			if err := r.setAside(num, 0, "a WAL after a damaged one"); err != nil {
				return err
			}
			continue
		}
		records, err := r.log(num, i >= newest)
		if err != nil {
			return err
		}
		r.prevLog = logFileName(num)
		if records == 0 && !r.salvaged {
			empty = append(empty, num)
		}
	}
	d.salvaged = r.report
	d.mu.imm = r.flushables
	d.visibleSeq.Store(r.lastSeq)
	d.commit.nextSeq = r.lastSeq + 1
	orphans, err := d.checkTableFiles(sf, r.lastSeq)
	if err != nil {
		return err
	}
	failpoint.Hit(failpoint.RecoveryAfterReplayBeforeMani)
	if err := d.startManifestLocked(); err != nil {
		return err
	}
	failpoint.Hit(failpoint.RecoveryAfterManifestBeforeWAL)
	if err := d.newLog(); err != nil {
		return err
	}
	failpoint.Hit(failpoint.RecoveryAfterNewWALBeforeGC)
	d.mu.activeLog = d.walNum.Load()
	d.commit.slot = &memSlot{mem: memtable.New(d.opts.MemTableSize)}
	d.installReadStateLocked(d.memsLocked(d.commit.slot.mem))
	d.updateSlowdownLocked()
	return d.removeObsoleteFiles(sf, orphans, empty)
}

// loadManifest loads the version set that CURRENT names. A directory
// without CURRENT is a new store if it holds no WAL and no table (a crash
// while creating the store may have left a manifest that CURRENT never
// named); otherwise it is damaged, never silently emptied.
func (d *DB) loadManifest(sf storeFiles) (*manifest.Version, manifest.State, error) {
	v, s, num, err := manifest.Load(d.fs, d.dirname, newManifestRecordReader)
	if err == nil {
		d.loadedManifest = manifest.FileName(num)
		d.opts.Logger.Info("recovery loaded the manifest", "file", d.loadedManifest, "state", s.String())
		return v, s, nil
	}
	if sf.current || !errors.Is(err, os.ErrNotExist) {
		return nil, manifest.State{}, err
	}
	if len(sf.logs) > 0 || len(sf.tables) > 0 {
		return nil, manifest.State{}, base.CorruptionErrorf(
			"lsm: %s holds %d WAL files and %d tables but no %s", d.dirname, len(sf.logs), len(sf.tables), manifest.CurrentName)
	}
	v, err = manifest.NewBuilder(nil).Build()
	return v, manifest.State{NextFileNumber: 1}, err
}

// checkTableFiles checks, before Open changes anything, that every table the
// manifest names is in the directory, and that no table the manifest does
// not name holds commits after lastSeq, the last one recovered: such a
// table is the output of a flush whose manifest edit was lost after its WAL
// was deleted (a damaged last manifest record reads as a torn tail), and
// removing it would lose those commits silently. A table left by a crash
// before its edit was durable holds commits its WAL still has. It returns
// the numbers of the tables the manifest does not name.
func (d *DB) checkTableFiles(sf storeFiles, lastSeq base.SeqNum) (orphans []uint64, err error) {
	present := make(map[uint64]bool, len(sf.tables))
	for _, num := range sf.tables {
		present[num] = true
	}
	v := d.mu.current
	for level := range manifest.NumLevels {
		for _, f := range v.Files(level) {
			if !present[f.FileNum] {
				return nil, base.CorruptionErrorf("lsm: L%d table %s named by the manifest is missing", level, tableFileName(f.FileNum))
			}
			delete(present, f.FileNum)
		}
	}
	for num := range present {
		orphans = append(orphans, num)
		name := tableFileName(num)
		f, err := d.fs.Open(d.path(name))
		if err != nil {
			continue
		}
		t, err := sstable.Open(f, num, sstable.ReaderOptions{FileName: name})
		if err != nil {
			f.Close() // a table cut short by a crash: garbage
			continue
		}
		props := t.Properties()
		t.Close()
		if props.LargestSeq > lastSeq && props.NumEntries > 0 {
			return nil, base.CorruptionErrorf("lsm: table %s, which the manifest does not name, holds commits up to "+
				"sequence number %d, after the last one recovered (%d): the manifest %s lost an edit", name, props.LargestSeq, lastSeq, d.loadedManifest)
		}
	}
	return orphans, nil
}

// removeObsoleteFiles removes, once the new manifest and WAL are durable,
// what the store no longer uses: older manifests, tables no version holds
// (a crash before their flush or compaction was recorded), WALs below the
// log number, and the replayed WALs that held no record.
func (d *DB) removeObsoleteFiles(sf storeFiles, orphanTables, emptyLogs []uint64) error {
	var obsolete []string
	for _, num := range sf.manifests {
		if num != d.mu.manifest.FileNum() {
			obsolete = append(obsolete, manifest.FileName(num))
		}
	}
	for _, num := range orphanTables {
		obsolete = append(obsolete, tableFileName(num))
	}
	for _, num := range sf.logs {
		if num < d.mu.state.LogNumber || slices.Contains(emptyLogs, num) {
			obsolete = append(obsolete, logFileName(num))
		}
	}
	// A file that cannot be removed is only logged: it is tried again at
	// the next Open.
	for _, name := range obsolete {
		d.removeFile(name)
	}
	if len(obsolete) > 0 {
		d.opts.Logger.Info("recovery removed obsolete files", "files", obsolete)
		return d.syncDir()
	}
	return nil
}

// newestLog returns the index in logs of the newest log that holds any
// bytes: its torn tail is the only damage recovery forgives. A new log is
// only written once the one before it is synced, so the empty logs after it
// (a crash right after a rotation created one) change nothing.
func (d *DB) newestLog(logs []uint64) (int, error) {
	i := len(logs) - 1
	for ; i > 0; i-- {
		fi, err := d.fs.Stat(d.path(logFileName(logs[i])))
		if err != nil {
			return 0, err
		}
		if fi.Size() > 0 {
			break
		}
	}
	return i, nil
}

// replay applies WAL records to memtables during recovery: each WAL gets
// memtables of its own, queued for flush, so that a flush retires whole
// WAL files.
type replay struct {
	d          *DB
	mem        *memtable.MemTable // of the WAL being replayed
	flushables []*flushable       // full ones, oldest first
	lastSeq    base.SeqNum
	// floor is the last sequence number the tables hold: records at or
	// below it are skipped, until the first one applied.
	floor   base.SeqNum
	applied bool
	// prevLog names the WAL replayed before the current one ("" for the
	// first), for errors.
	prevLog    string
	firstOfLog bool // no record of the current WAL applied yet
	// salvaged is set once Options.Salvage dropped damaged records; report
	// lists what was set aside.
	salvaged bool
	report   []SalvagedFile
}

// errSeqGap marks a WAL record that does not follow the one before: commits
// are missing, so the commits after it cannot be salvaged as a prefix.
var errSeqGap = errors.New("sequence gap")

// salvage ends the replay at the damage err found in WAL num, whose records
// up to offset valid were applied: the file is copied aside whole (for a
// post-mortem) and cut at valid, and every later WAL is set aside, so that
// the store opens to the prefix of commits before the damage.
func (r *replay) salvage(num uint64, valid int64, err error) error {
	r.salvaged = true
	if err := r.setAside(num, valid, err.Error()); err != nil {
		return err
	}
	if valid == 0 {
		return nil // setAside removed the file: nothing of it is kept
	}
	return r.d.truncate(r.d.path(logFileName(num)), valid)
}

// setAside copies WAL num to NNNNNN.log.salvaged and records in the report
// that its bytes from offset keep on were dropped.
func (r *replay) setAside(num uint64, keep int64, reason string) error {
	name := logFileName(num)
	b, err := vfs.ReadFile(r.d.fs, r.d.path(name))
	if err != nil {
		return err
	}
	aside := name + salvagedSuffix
	if err := vfs.WriteFile(r.d.fs, r.d.path(aside), b); err != nil {
		return fmt.Errorf("setting %s aside: %w", name, err)
	}
	if keep == 0 {
		if err := r.d.fs.Remove(r.d.path(name)); err != nil {
			return err
		}
	}
	if err := r.d.syncDir(); err != nil {
		return err
	}
	f := SalvagedFile{File: name, CopiedTo: aside, Offset: keep, DroppedBytes: int64(len(b)) - keep, Reason: reason}
	r.report = append(r.report, f)
	r.d.opts.Logger.Warn("salvage dropped WAL records", "file", name, "offset", keep,
		"dropped_bytes", f.DroppedBytes, "copy", aside, "reason", reason)
	return nil
}

// log replays WAL number num and returns how many records it held.
func (r *replay) log(num uint64, newest bool) (int, error) {
	name := r.d.path(logFileName(num))
	f, err := r.d.fs.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	wr := wal.NewReader(f, num, name, newest)
	records := 0
	r.mem, r.firstOfLog = nil, true
	defer func() {
		if r.mem != nil {
			r.flushables = append(r.flushables, &flushable{mem: r.mem, logNum: num, lastSeq: r.lastSeq})
		}
	}()
	valid := int64(0) // end of the last record applied
	for {
		rec, err := wr.Next()
		if err == io.EOF {
			break
		}
		if err == nil && len(rec) == 0 {
			// The sync marker written when the WAL was closed.
			valid = wr.Offset()
			continue
		}
		if err == nil {
			err = r.record(slices.Clone(rec), num, name, wr.Offset())
		}
		if err != nil {
			if r.d.opts.Salvage && errors.Is(err, base.ErrCorruption) && !errors.Is(err, errSeqGap) {
				return records, r.salvage(num, valid, err)
			}
			return records, err
		}
		valid = wr.Offset()
		records++
	}
	size, err := f.Size()
	if err != nil {
		return records, err
	}
	if newest && valid < size {
		if err := r.d.truncate(name, valid); err != nil {
			return records, fmt.Errorf("dropping the torn tail of %s: %w", name, err)
		}
		r.d.opts.Logger.Warn("recovery dropped the torn tail of the newest WAL",
			"file", name, "valid_bytes", valid, "dropped_bytes", size-valid)
	}
	r.d.opts.Logger.Info("recovery replayed a WAL", "file", name, "records", records, "last_seq", r.lastSeq)
	return records, nil
}

// record applies one commit record that ends at offset end of file name.
func (r *replay) record(repr []byte, num uint64, name string, end int64) error {
	seq, count, err := txn.DecodeHeader(repr)
	if err != nil {
		return fmt.Errorf("%s: record ending at offset %d: %w", name, end, err)
	}
	if uint64(count) > uint64(len(repr)-txn.HeaderSize)/2 {
		return base.CorruptionErrorf("%s: record ending at offset %d claims %d entries in %d bytes", name, end, count, len(repr))
	}
	if last := seq + base.SeqNum(count) - 1; count > 0 && last <= r.floor && !r.applied {
		// Flushed already: the WAL held several memtables and the first
		// ones reached a table before the crash.
		return nil
	}
	if count == 0 {
		return base.CorruptionErrorf("%s: record ending at offset %d holds no entry", name, end)
	}
	if seq != r.lastSeq+1 {
		where := "the WAL before it, " + r.prevLog
		switch {
		case r.firstOfLog && r.prevLog != "":
		case r.applied:
			where = "the records before it"
		case r.prevLog == "":
			where = "the manifest " + r.d.loadedManifest + " (last sequence number " + strconv.FormatUint(r.floor, 10) + ")"
		}
		return fmt.Errorf("%w: %w", errSeqGap, base.CorruptionErrorf(
			"%s: record ending at offset %d holds sequence numbers %d..+%d, want %d next: commits are missing from %s",
			name, end, seq, count, r.lastSeq+1, where))
	}
	need := int64(cap(repr)) + int64(count)*maxNodeSize
	if r.mem != nil && r.mem.Size()+need > r.mem.Capacity() {
		r.flushables = append(r.flushables, &flushable{mem: r.mem, logNum: num, lastSeq: r.lastSeq})
		r.mem = nil
	}
	if r.mem == nil {
		r.mem = newMemTable(r.d.opts.MemTableSize, need)
	}
	if err := applyBatch(r.mem, r.mem.Retain(repr), repr); err != nil {
		return fmt.Errorf("%s: record ending at offset %d: %w", name, end, err)
	}
	r.lastSeq = seq + base.SeqNum(count) - 1
	r.applied, r.firstOfLog = true, false
	return nil
}

// truncate cuts file name to size bytes and syncs it.
func (d *DB) truncate(name string, size int64) error {
	f, err := d.fs.OpenReadWrite(name)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// closeWAL closes a WAL with a sync marker: it syncs the log, then appends
// an empty record, whose chunk header records that every byte before it is
// durable, and closes (syncing it). A later reader then reports damage
// anywhere before the marker as corruption instead of taking it for a torn
// tail: without it, the records of a NoSync log (never synced before
// closing) would carry no proof of durability. Replay skips empty records.
func closeWAL(w *wal.Writer) error {
	if err := w.Flush(w.Size(), true); err != nil {
		return errors.Join(err, w.Close())
	}
	if _, err := w.Append(nil); err != nil {
		return errors.Join(err, w.Close())
	}
	return w.Close()
}

// syncDir makes the store directory's entries durable.
func (d *DB) syncDir() error { return vfs.SyncDir(d.fs, d.dirname) }

// newLog creates the next WAL file, makes its directory entry durable and
// makes it the log commits append to. Callers hold d.commit's mutex (or own
// d exclusively, during Open).
func (d *DB) newLog() error {
	num := d.nextFileNum()
	f, err := d.fs.Create(d.path(logFileName(num)))
	if err != nil {
		return err
	}
	failpoint.Hit(failpoint.WALRotateAfterCreateBeforeSync)
	if err := d.syncDir(); err != nil {
		f.Close()
		return err
	}
	d.commit.log = wal.NewWriter(f, num)
	d.walNum.Store(num)
	d.wal.Store(d.commit.log)
	return nil
}

// memTableOverhead is the space of an empty memtable (its sentinel nodes),
// with room to spare.
const memTableOverhead = 4 << 10

// newMemTable returns a memtable of the configured size, or larger if one
// commit needs more.
func newMemTable(size, need int64) *memtable.MemTable {
	return memtable.New(max(size, need+memTableOverhead))
}
