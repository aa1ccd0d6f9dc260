package lsm

import (
	"bytes"
	"sort"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/manifest"
	"github.com/stratadb/strata/sstable"
)

// tableOpener hands out open tables by file number, reference counted: the
// caller calls release exactly once when done with the Reader and every
// Iter of it, and never closes the Reader itself. *sstable.TableCache is
// the engine's implementation. It must be safe for concurrent use.
type tableOpener interface {
	Get(fileNum uint64) (r *sstable.Reader, release func(), err error)
}

var (
	_ tableOpener      = (*sstable.TableCache)(nil)
	_ internalIterator = (*levelIter)(nil)
)

// levelIter is an internalIterator over the tables of one level L1+: files
// sorted by smallest key, no user key spanning two of them. It opens tables
// lazily through its tableOpener and holds at most one at a time: it
// releases a table before it opens the next. Seeks pick their table by
// binary search on the files' user-key bounds, opening no other.
//
// Bounds, lower (inclusive) and upper (exclusive), nil meaning open, only
// limit the files the iterator visits: a file wholly outside
// [lower, upper) is never opened, but every entry of a file that straddles
// a bound is returned. The caller checks keys against its bounds (as
// Iterator does).
//
// Positioning methods report whether the iterator is on an entry. Next and
// Prev on an unpositioned iterator return false. Key's UserKey is valid
// until the next positioning call; Value is never modified nor reused (see
// sstable.Iter) and may be kept. An error opening or reading a table stops
// the iterator for good: positioning methods return false and Error returns
// the error (damage wraps base.ErrCorruption). After Close every
// positioning method returns false. A levelIter is used by one goroutine at
// a time. Moving within a table, or to a table the opener holds open whose
// blocks are cached, allocates nothing.
type levelIter struct {
	opener  tableOpener
	files   []*manifest.FileMetadata // the files within the bounds
	index   int                      // index in files of the open table, -1 if none
	release func()                   // releases the open table
	iter    sstable.Iter             // over the open table
	valid   bool
	err     error
	closed  bool
	// noCacheFill keeps the blocks read out of the block cache (for
	// compactions).
	noCacheFill bool
}

// newLevelIter returns an unpositioned iterator over files (a level's
// tables, see levelIter) within the bounds [lower, upper), nil meaning open.
// files must not be modified while the iterator is in use; the bounds are
// only read by newLevelIter.
func newLevelIter(opener tableOpener, files []*manifest.FileMetadata, lower, upper []byte) *levelIter {
	l := &levelIter{}
	l.init(opener, files, lower, upper)
	return l
}

// init makes l an unpositioned iterator as newLevelIter does, keeping the
// buffers of its table iterator. l may be zero, closed or in use (its table
// is then released).
func (l *levelIter) init(opener tableOpener, files []*manifest.FileMetadata, lower, upper []byte) {
	l.closeTable()
	lo, hi := 0, len(files)
	if lower != nil {
		lo = firstLargestGE(files, lower)
	}
	if upper != nil {
		hi = firstSmallestGE(files, upper)
	}
	*l = levelIter{opener: opener, files: files[lo:max(lo, hi)], index: -1, iter: l.iter}
}

// firstLargestGE returns the index of the first file whose largest user key
// is >= key, or len(files): the first file that may hold key or a key
// after it.
func firstLargestGE(files []*manifest.FileMetadata, key []byte) int {
	return sort.Search(len(files), func(i int) bool { return bytes.Compare(files[i].Largest.UserKey, key) >= 0 })
}

// firstSmallestGE returns the index of the first file whose smallest user
// key is >= key, or len(files): every earlier file holds a key below key.
func firstSmallestGE(files []*manifest.FileMetadata, key []byte) int {
	return sort.Search(len(files), func(i int) bool { return bytes.Compare(files[i].Smallest.UserKey, key) >= 0 })
}

// open makes files[i] the open table, with an unpositioned iterator over
// it, releasing the previous table first. It reports false, recording the
// error, when the table cannot be opened.
func (l *levelIter) open(i int) bool {
	if i == l.index {
		return true
	}
	l.closeTable()
	r, release, err := l.opener.Get(l.files[i].FileNum)
	if err != nil {
		l.err = err
		return false
	}
	l.index, l.release = i, release
	l.iter.Init(r)
	l.iter.SetCacheFill(!l.noCacheFill)
	return true
}

// closeTable closes the table iterator and releases the open table.
func (l *levelIter) closeTable() {
	if l.release == nil {
		return
	}
	l.iter.Close()
	l.release()
	l.index, l.release = -1, nil
}

// usable reports whether the iterator may move; otherwise it is left
// unpositioned.
func (l *levelIter) usable() bool {
	l.valid = false
	return !l.closed && l.err == nil
}

// settle records the table iterator's error when a move of it failed.
func (l *levelIter) settle(ok bool) bool {
	if !ok && l.err == nil {
		l.err = l.iter.Error()
	}
	return ok
}

// forward moves to the first entry of the tables after the open one while
// the open one has no more entries (ok is false).
func (l *levelIter) forward(ok bool) bool {
	for !l.settle(ok) && l.err == nil && l.index+1 < len(l.files) {
		if !l.open(l.index + 1) {
			l.valid = false
			return false
		}
		ok = l.iter.First()
	}
	l.valid = ok && l.err == nil
	return l.valid
}

// backward moves to the last entry of the tables before the open one while
// the open one has no entries before the position (ok is false).
func (l *levelIter) backward(ok bool) bool {
	for !l.settle(ok) && l.err == nil && l.index > 0 {
		if !l.open(l.index - 1) {
			l.valid = false
			return false
		}
		ok = l.iter.Last()
	}
	l.valid = ok && l.err == nil
	return l.valid
}

// First moves to the first entry of the first file within the bounds.
func (l *levelIter) First() bool {
	if !l.usable() || len(l.files) == 0 || !l.open(0) {
		return false
	}
	return l.forward(l.iter.First())
}

// Last moves to the last entry of the last file within the bounds.
func (l *levelIter) Last() bool {
	if !l.usable() || len(l.files) == 0 || !l.open(len(l.files)-1) {
		return false
	}
	return l.backward(l.iter.Last())
}

// SeekGE moves to the first entry whose user key is >= key (its newest
// version).
func (l *levelIter) SeekGE(key []byte) bool {
	if !l.usable() {
		return false
	}
	i := firstLargestGE(l.files, key)
	if i == len(l.files) || !l.open(i) {
		return false
	}
	return l.forward(l.iter.SeekGE(key))
}

// SeekLT moves to the last entry whose user key is < key (its oldest
// version).
func (l *levelIter) SeekLT(key []byte) bool {
	if !l.usable() {
		return false
	}
	i := firstSmallestGE(l.files, key) - 1
	if i < 0 || !l.open(i) {
		return false
	}
	return l.backward(l.iter.SeekLT(key))
}

// Next moves to the next entry, into the next file when the open one is
// exhausted.
func (l *levelIter) Next() bool {
	if !l.valid {
		return false
	}
	return l.forward(l.iter.Next())
}

// Prev moves to the previous entry, into the previous file when the open
// one has no entry before the position.
func (l *levelIter) Prev() bool {
	if !l.valid {
		return false
	}
	return l.backward(l.iter.Prev())
}

// Key returns the current entry's key. Only meaningful after a positioning
// method returned true; its UserKey is valid until the next one.
func (l *levelIter) Key() base.InternalKey { return l.iter.Key() }

// Value returns the current entry's value (empty for a deletion). Only
// meaningful after a positioning method returned true. The bytes are never
// modified: they may be kept, but must not be modified.
func (l *levelIter) Value() []byte { return l.iter.Value() }

// Error returns the error that stopped the iterator, if any.
func (l *levelIter) Error() error { return l.err }

// Close releases the open table, if any, and returns Error(). A second
// Close returns the same.
func (l *levelIter) Close() error {
	if !l.closed {
		l.closed, l.valid = true, false
		l.closeTable()
	}
	return l.err
}

// getFromLevel returns the newest version of userKey with a sequence number
// <= seq held by files, the tables of one level L1+ (see levelIter): its
// value and kind, and found true. It opens at most the one table whose
// user-key range holds userKey, and none when that table's entries are all
// newer than seq; the table's bloom filter then skips most misses. The
// value is never modified and may be kept. Errors are the opener's or the
// table's (damage wraps base.ErrCorruption). Safe for concurrent use when
// the opener is.
func getFromLevel(files []*manifest.FileMetadata, opener tableOpener, userKey []byte, seq base.SeqNum) (value []byte, kind base.Kind, found bool, err error) {
	i := firstLargestGE(files, userKey)
	if i == len(files) {
		return nil, 0, false, nil
	}
	return getFromTable(files[i], opener, userKey, seq)
}

// getFromTable returns the newest version of userKey with a sequence number
// <= seq held by table f, as getFromLevel does. It opens f only when f's
// user-key range holds userKey and f holds a version at or below seq.
func getFromTable(f *manifest.FileMetadata, opener tableOpener, userKey []byte, seq base.SeqNum) (value []byte, kind base.Kind, found bool, err error) {
	if f.SmallestSeq > seq || bytes.Compare(userKey, f.Smallest.UserKey) < 0 || bytes.Compare(userKey, f.Largest.UserKey) > 0 {
		return nil, 0, false, nil
	}
	r, release, err := opener.Get(f.FileNum)
	if err != nil {
		return nil, 0, false, err
	}
	defer release()
	return r.Get(userKey, seq)
}

// tableSources opens the table sources of a merge, each level-0 table on
// its own and each deeper level as one levelIter, and releases them all in
// close. With noCacheFill the blocks read stay out of the block cache (a
// compaction reads each once).
type tableSources struct {
	opener      tableOpener
	noCacheFill bool
	tables      []*sstable.Iter
	releases    []func()
	levels      []*levelIter
}

// addTable opens table f and returns an iterator over it.
func (s *tableSources) addTable(f *manifest.FileMetadata) (internalIterator, error) {
	r, release, err := s.opener.Get(f.FileNum)
	if err != nil {
		return nil, err
	}
	it := r.NewIter()
	it.SetCacheFill(!s.noCacheFill)
	s.tables = append(s.tables, it)
	s.releases = append(s.releases, release)
	return it, nil
}

// addLevel returns an iterator over the tables of a level L1+ within
// [lower, upper) (see newLevelIter).
func (s *tableSources) addLevel(files []*manifest.FileMetadata, lower, upper []byte) internalIterator {
	l := newLevelIter(s.opener, files, lower, upper)
	l.noCacheFill = s.noCacheFill
	s.levels = append(s.levels, l)
	return l
}

// close closes every iterator and releases every table opened.
func (s *tableSources) close() {
	for i, it := range s.tables {
		it.Close()
		s.releases[i]()
	}
	for _, l := range s.levels {
		l.Close()
	}
	s.tables, s.releases, s.levels = nil, nil, nil
}
