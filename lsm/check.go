package lsm

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/manifest"
	"github.com/stratadb/strata/sstable"
	"github.com/stratadb/strata/txn"
	"github.com/stratadb/strata/wal"
)

// CheckReport is what Check found in a store directory.
type CheckReport struct {
	// Manifest is the manifest CURRENT names, State its scalars.
	Manifest string
	State    string
	// Tables, TableBytes and Entries count the tables the manifest names,
	// their bytes and their entries, all read and verified.
	Tables     int
	TableBytes int64
	Entries    int64
	// WALs and WALRecords count the WAL files still to replay and their
	// commit records, all read and verified.
	WALs       int
	WALRecords int
	// Problems lists every damage or inconsistency found, each naming its
	// file (and offset, for damage).
	Problems []string
}

// String formats the report.
func (r *CheckReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "manifest  %s (%s)\n", r.Manifest, r.State)
	fmt.Fprintf(&b, "tables    %d (%s, %d entries), every block verified\n", r.Tables, humanBytes(r.TableBytes), r.Entries)
	fmt.Fprintf(&b, "wal       %d files, %d records verified\n", r.WALs, r.WALRecords)
	if len(r.Problems) == 0 {
		b.WriteString("no problem found\n")
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "PROBLEM   %s\n", p)
	}
	return b.String()
}

func (r *CheckReport) problemf(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Check verifies the store in dirname without changing it: the manifest
// that CURRENT names; every checksum of every table it names, the order of
// the keys within each table and across the tables of each level, and that
// each table's keys, sequence numbers, size and count match the manifest;
// every record of the WAL files still to replay, and their sequence
// numbers; and that the directory holds no file the store does not use
// (Open removes those a crash leaves behind, so check a store that was
// closed, or opened and closed after a crash). The store must not be open:
// Check takes its lock. opts is used for FS (nil means the defaults).
//
// It returns the report and, if it found any problem, an error wrapping
// ErrCorruption; other errors (the lock, listing the directory) are
// returned as they are, and a directory holding no store file at all is
// ErrNotAStore.
func Check(dirname string, opts *Options) (*CheckReport, error) {
	o := opts.withDefaults()
	d := &DB{dirname: dirname, opts: o, fs: o.FS}
	if _, err := d.fs.Stat(dirname); err != nil {
		return nil, fmt.Errorf("lsm: check %s: %w", dirname, err)
	}
	// Before the lock, which creates LOCK: a directory holding none of a
	// store's files is left as it is.
	if sf, err := d.listStore(); err == nil && !sf.current && len(sf.manifests)+len(sf.logs)+len(sf.tables) == 0 {
		return nil, fmt.Errorf("lsm: check %s: %w", dirname, ErrNotAStore)
	}
	lock, err := d.fs.Lock(d.path(lockFileName))
	if err != nil {
		return nil, fmt.Errorf("lsm: check %s: %w", dirname, err)
	}
	defer lock.Close()
	sf, err := d.listStore()
	if err != nil {
		return nil, fmt.Errorf("lsm: check %s: %w", dirname, err)
	}
	r := &CheckReport{}
	v, s, num, err := manifest.Load(d.fs, dirname, newManifestRecordReader)
	if err != nil {
		r.problemf("manifest: %v", err)
		return r, fmt.Errorf("lsm: check %s: %w", dirname, errors.Join(base.ErrCorruption, err))
	}
	r.Manifest, r.State = manifest.FileName(num), s.String()
	live := d.checkTables(r, v)
	d.checkWALs(r, sf, s)
	for _, n := range sf.tables {
		if !live[n] {
			r.problemf("%s: table not named by the manifest", tableFileName(n))
		}
	}
	for _, n := range sf.manifests {
		if n != num {
			r.problemf("%s: manifest other than the current one", manifest.FileName(n))
		}
	}
	if len(r.Problems) > 0 {
		return r, base.CorruptionErrorf("lsm: check %s: %d problems, the first: %s", dirname, len(r.Problems), r.Problems[0])
	}
	return r, nil
}

// checkTables verifies every table of v and returns their numbers.
func (d *DB) checkTables(r *CheckReport, v *manifest.Version) map[uint64]bool {
	live := make(map[uint64]bool)
	for level := range manifest.NumLevels {
		var prev *manifest.FileMetadata
		for _, f := range v.Files(level) {
			live[f.FileNum] = true
			r.Tables++
			r.TableBytes += int64(f.Size)
			d.checkTable(r, level, f)
			if level > 0 && prev != nil && base.CompareInternal(prev.Largest, f.Smallest) >= 0 {
				r.problemf("L%d: tables %06d and %06d overlap", level, prev.FileNum, f.FileNum)
			}
			prev = f
		}
	}
	return live
}

// checkTable reads every entry of table f of level, checking block
// checksums, key order and the manifest's metadata.
func (d *DB) checkTable(r *CheckReport, level int, f *manifest.FileMetadata) {
	name := tableFileName(f.FileNum)
	file, err := d.fs.Open(d.path(name))
	if err != nil {
		r.problemf("L%d %s: %v", level, name, err)
		return
	}
	size, err := file.Size()
	if err == nil && uint64(size) != f.Size {
		err = fmt.Errorf("%d bytes, the manifest says %d", size, f.Size)
	}
	var t *sstable.Reader
	if err == nil {
		t, err = sstable.Open(file, f.FileNum, sstable.ReaderOptions{FileName: name})
	}
	if err != nil {
		file.Close()
		r.problemf("L%d %s: %v", level, name, err)
		return
	}
	defer t.Close()
	it := t.NewIter()
	defer it.Close()
	var prevKey base.InternalKey
	var n uint64
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		switch {
		case n > 0 && base.CompareInternal(prevKey, k) >= 0:
			r.problemf("L%d %s: key %s after %s", level, name, k, prevKey)
			return
		case k.Seq() < f.SmallestSeq || k.Seq() > f.LargestSeq:
			r.problemf("L%d %s: key %s outside the sequence range %d..%d", level, name, k, f.SmallestSeq, f.LargestSeq)
			return
		case n == 0 && base.CompareInternal(k, f.Smallest) != 0:
			r.problemf("L%d %s: first key %s, the manifest says %s", level, name, k, f.Smallest)
			return
		}
		// The iterator reuses its key buffer: keep a copy.
		prevKey = base.InternalKey{UserKey: append(prevKey.UserKey[:0], k.UserKey...), Trailer: k.Trailer}
		n++
	}
	if err := it.Error(); err != nil {
		r.problemf("L%d %s: %v", level, name, err)
		return
	}
	r.Entries += int64(n)
	switch {
	case n != t.Properties().NumEntries:
		r.problemf("L%d %s: %d entries, the properties say %d", level, name, n, t.Properties().NumEntries)
	case n > 0 && base.CompareInternal(prevKey, f.Largest) != 0:
		r.problemf("L%d %s: last key %s, the manifest says %s", level, name, prevKey, f.Largest)
	}
}

// checkWALs reads every WAL file at or after the log number, checking
// record checksums and that sequence numbers follow each other from the
// manifest's last one; WALs below it are leftovers.
func (d *DB) checkWALs(r *CheckReport, sf storeFiles, s manifest.State) {
	var logs []uint64
	for _, n := range sf.logs {
		if n < s.LogNumber {
			r.problemf("%s: WAL below the log number %d", logFileName(n), s.LogNumber)
			continue
		}
		logs = append(logs, n)
	}
	newest, err := d.newestLog(logs)
	if err != nil {
		r.problemf("WAL: %v", err)
		return
	}
	next, started := s.LastSeqNum+1, false
	for i, n := range logs {
		r.WALs++
		name := d.path(logFileName(n))
		f, err := d.fs.Open(name)
		if err != nil {
			r.problemf("%s: %v", logFileName(n), err)
			continue
		}
		wr := wal.NewReader(f, n, name, i >= newest)
		for {
			rec, err := wr.Next()
			if err == io.EOF {
				break
			}
			if err == nil && len(rec) == 0 {
				continue // a sync marker (see closeWAL)
			}
			if err == nil {
				var seq base.SeqNum
				var count uint32
				seq, count, err = txn.DecodeHeader(rec)
				last := seq + base.SeqNum(count) - 1
				switch {
				case err != nil:
				case count == 0:
					err = fmt.Errorf("record ending at offset %d holds no entry", wr.Offset())
				case !started && last < next:
					// Flushed already (several memtables in one WAL).
				case seq != next:
					err = fmt.Errorf("record ending at offset %d holds sequence numbers from %d, want %d", wr.Offset(), seq, next)
				default:
					next, started = last+1, true
				}
			}
			if err != nil {
				r.problemf("%s: %v", logFileName(n), err)
				break
			}
			r.WALRecords++
		}
		f.Close()
	}
}
