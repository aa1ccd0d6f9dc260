package lsm

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/memtable"
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
func parseLogFileName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, logSuffix)
	if !ok || len(s) < 6 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// Open opens the store in dirname, creating the directory and an empty store
// if needed, and recovers every committed transaction from its WAL files. A
// nil opts means the defaults. With Options.InMemory, dirname only names the
// store in errors.
//
// Only one DB may have a directory open at a time: a second Open fails with
// an error wrapping ErrLocked. Damage to the WAL other than a torn tail of
// the newest file fails Open with an error wrapping ErrCorruption that names
// the file and offset.
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
	if o.InMemory {
		d.initInMemory()
		return d, nil
	}
	if err := d.lockDir(); err != nil {
		return nil, err
	}
	if err := d.recover(); err != nil {
		if d.commit.log != nil {
			d.commit.log.Close()
		}
		d.lock.Close()
		return nil, fmt.Errorf("lsm: open %s: %w", dirname, err)
	}
	return d, nil
}

// initInMemory starts an empty store that lives only in memory: commits
// skip the WAL.
func (d *DB) initInMemory() {
	d.commit.slot = &memSlot{mem: memtable.New(d.opts.MemTableSize)}
	d.commit.nextSeq = 1
	d.rs.Store(&readState{mems: []*memtable.MemTable{d.commit.slot.mem}})
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

// recover replays the WAL files in order into memtables, drops a torn tail
// of the newest one, and starts a new WAL file.
func (d *DB) recover() error {
	names, err := d.fs.List(d.dirname)
	if err != nil {
		return err
	}
	var logs []uint64
	for _, name := range names {
		if n, ok := parseLogFileName(name); ok {
			logs = append(logs, n)
		}
	}
	slices.Sort(logs)
	newest, err := d.newestLog(logs)
	if err != nil {
		return err
	}
	r := replay{d: d, mem: memtable.New(d.opts.MemTableSize)}
	var empty []uint64
	for i, num := range logs {
		records, err := r.log(num, i >= newest)
		if err != nil {
			return err
		}
		if records == 0 {
			empty = append(empty, num)
		}
	}
	r.mems = append(r.mems, r.mem)
	slices.Reverse(r.mems)
	d.rs.Store(&readState{mems: r.mems})
	d.visibleSeq.Store(r.lastSeq)
	d.commit.nextSeq = r.lastSeq + 1
	d.commit.slot = &memSlot{mem: r.mem}
	d.commit.nextFile = 1
	if len(logs) > 0 {
		d.commit.nextFile = logs[len(logs)-1] + 1
	}
	if err := d.newLog(); err != nil {
		return err
	}
	// Logs with no record hold nothing; remove them so that reopening does
	// not pile up empty files. The new log is durable first.
	for _, num := range empty {
		if err := d.fs.Remove(d.path(logFileName(num))); err != nil {
			return err
		}
	}
	if len(empty) > 0 {
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

// replay applies WAL records to memtables during recovery.
type replay struct {
	d       *DB
	mem     *memtable.MemTable
	mems    []*memtable.MemTable // full ones, oldest first
	lastSeq base.SeqNum
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
	for {
		rec, err := wr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return records, err
		}
		if err := r.record(slices.Clone(rec), name, wr.Offset()); err != nil {
			return records, err
		}
		records++
	}
	size, err := f.Size()
	if err != nil {
		return records, err
	}
	if valid := wr.Offset(); newest && valid < size {
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
func (r *replay) record(repr []byte, name string, end int64) error {
	seq, count, err := txn.DecodeHeader(repr)
	if err != nil {
		return fmt.Errorf("%s: record ending at offset %d: %w", name, end, err)
	}
	if uint64(count) > uint64(len(repr)-txn.HeaderSize)/2 {
		return base.CorruptionErrorf("%s: record ending at offset %d claims %d entries in %d bytes", name, end, count, len(repr))
	}
	if count == 0 || seq != r.lastSeq+1 {
		return base.CorruptionErrorf("%s: record ending at offset %d holds sequence numbers %d..+%d, want %d next",
			name, end, seq, count, r.lastSeq+1)
	}
	need := int64(cap(repr)) + int64(count)*maxNodeSize
	if !r.mem.Empty() && r.mem.Size()+need > r.mem.Capacity() {
		r.mems = append(r.mems, r.mem)
		r.mem = newMemTable(r.d.opts.MemTableSize, need)
	} else if r.mem.Empty() && need > r.mem.Capacity() {
		r.mem = newMemTable(r.d.opts.MemTableSize, need)
	}
	if err := applyBatch(r.mem, r.mem.Retain(repr), repr); err != nil {
		return fmt.Errorf("%s: record ending at offset %d: %w", name, end, err)
	}
	r.lastSeq = seq + base.SeqNum(count) - 1
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

// syncDir makes the store directory's entries durable.
func (d *DB) syncDir() error { return vfs.SyncDir(d.fs, d.dirname) }

// newLog creates the next WAL file, makes its directory entry durable and
// makes it the log commits append to. Callers hold d.commit's mutex (or own
// d exclusively, during Open).
func (d *DB) newLog() error {
	num := d.commit.nextFile
	f, err := d.fs.Create(d.path(logFileName(num)))
	if err != nil {
		return err
	}
	if err := d.syncDir(); err != nil {
		f.Close()
		return err
	}
	d.commit.nextFile++
	d.commit.log = wal.NewWriter(f, num)
	d.commit.logNum = num
	return nil
}

// rotateLocked makes room for a commit needing need bytes of memtable: the
// full memtable becomes immutable and a new WAL file starts, so that a
// future flush can retire the old file with the old memtable. A memtable
// that is still empty is only replaced by a larger one.
//
// The old WAL is closed (written and synced) before the new one is
// created: a log after the newest non-empty one never holds a record, so
// after a crash at any point only the newest log can have a torn tail.
func (d *DB) rotateLocked(need int64) error {
	newMem := newMemTable(d.opts.MemTableSize, need)
	mems := d.rs.Load().mems
	switch {
	case d.commit.slot.unused():
		mems = append([]*memtable.MemTable{newMem}, mems[1:]...)
	case d.opts.InMemory:
		mems = append([]*memtable.MemTable{newMem}, mems...)
	default:
		old := d.commit.log
		d.commit.log = nil
		if err := old.Close(); err != nil {
			return err
		}
		if err := d.newLog(); err != nil {
			return err
		}
		mems = append([]*memtable.MemTable{newMem}, mems...)
		d.stats.rotations.Add(1)
		d.opts.Logger.Info("rotated the memtable and WAL", "wal", logFileName(d.commit.logNum),
			"memtables", len(mems))
	}
	d.commit.slot = &memSlot{mem: newMem}
	d.rs.Store(&readState{mems: mems})
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
