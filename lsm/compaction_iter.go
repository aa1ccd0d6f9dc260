package lsm

import (
	"bytes"
	"slices"

	"github.com/stratadb/strata/internal/base"
)

// compactionIter turns the merged input of a flush or a compaction (every
// version of every key, in internal-key order) into the entries the output
// must keep. Three rules drop entries:
//
//   - Snapshot stripes. The open snapshots S_0 < S_1 < ... < S_{n-1} cut the
//     sequence numbers into stripes (-inf, S_0], (S_0, S_1], ...,
//     (S_{n-1}, +inf). A reader at S sees, per user key, the newest version
//     with seq <= S, so within one stripe no reader can tell the versions
//     below the newest one: for each user key only the newest version of
//     each stripe is kept. The top stripe is the one read at "latest".
//   - Tombstone elision. When the output is bottommost (the caller knows that
//     no older data for the key range exists below the output level), a
//     tombstone in the lowest stripe (at or below the oldest snapshot) is
//     dropped: every reader that sees it finds nothing either way. The older
//     versions in its stripe go with it by the first rule.
//   - Dropped namespaces. Every entry whose user key starts with the prefix
//     of a namespace that dropped reports as dropped is skipped. A key
//     without a valid prefix is kept: never lose data to a parse failure.
//
// A compactionIter moves forward only and belongs to one goroutine. Key and
// Value alias the source's memory and stay valid until the next call to
// First or Next. Moving allocates nothing once the buffer for the current
// user key has grown to the longest key.
//
// The source must yield internal keys in strictly increasing internal-key
// order; a key out of order or of an unknown kind stops the iterator with an
// error wrapping base.ErrCorruption, since compacting a misordered input
// could silently drop live data.
type compactionIter struct {
	src        internalIterator
	snapshots  []base.SeqNum
	bottommost bool
	dropped    func(base.NamespaceID) bool

	key   base.InternalKey // current output entry
	valid bool
	err   error

	// The user key being walked, copied: a source may rebuild its keys in a
	// buffer it reuses (sstable.Iter does).
	userKey    []byte
	haveKey    bool
	trailer    uint64 // trailer of the last entry seen of userKey
	stripe     int    // stripe of the last version seen of userKey
	keyDropped bool   // userKey belongs to a dropped namespace

	// The last namespace looked up, to call dropped once per namespace run.
	ns      base.NamespaceID
	nsDrop  bool
	nsKnown bool

	stats compactionStats
}

// compactionStats counts what a compactionIter did. In equals Kept plus the
// three kinds of drops; an entry that stops the iterator as corrupt is not
// counted.
type compactionStats struct {
	In                int64 // entries read from the source
	Kept              int64 // entries returned
	DroppedVersions   int64 // versions shadowed within their snapshot stripe
	DroppedTombstones int64 // tombstones elided at the bottom level
	DroppedNamespace  int64 // entries of dropped namespaces
}

// newCompactionIter returns an unpositioned iterator over src, which the
// compactionIter then owns for moving; call First to start. snapshots are
// the sequence numbers of open snapshots (duplicates allowed); an unsorted
// slice is sorted in a copy. bottommost allows tombstone elision. dropped
// may be nil (no namespace is dropped); it is called once per run of keys of
// one namespace.
func newCompactionIter(src internalIterator, snapshots []base.SeqNum, bottommost bool,
	dropped func(base.NamespaceID) bool) *compactionIter {
	if !slices.IsSorted(snapshots) {
		snapshots = slices.Clone(snapshots)
		slices.Sort(snapshots)
	}
	return &compactionIter{src: src, snapshots: snapshots, bottommost: bottommost, dropped: dropped}
}

// First positions the iterator at the first entry to keep. It restarts the
// source and the per-key state but not the counters.
func (c *compactionIter) First() bool {
	c.haveKey, c.nsKnown, c.valid = false, false, false
	if c.err != nil {
		return false
	}
	return c.settle(c.src.First())
}

// Next moves to the next entry to keep.
func (c *compactionIter) Next() bool {
	if !c.valid {
		return false
	}
	c.valid = false
	return c.settle(c.src.Next())
}

// Valid reports whether the iterator is at an entry.
func (c *compactionIter) Valid() bool { return c.valid }

// Key returns the current entry's internal key, or the zero key when the
// iterator is not at an entry. Its UserKey is valid until the next First or
// Next.
func (c *compactionIter) Key() base.InternalKey {
	if !c.valid {
		return base.InternalKey{}
	}
	return c.key
}

// Value returns the current entry's value, or nil when the iterator is not
// at an entry. It is valid until the next First or Next.
func (c *compactionIter) Value() []byte {
	if !c.valid {
		return nil
	}
	return c.src.Value()
}

// Error returns the error that stopped the iterator: a misordered or
// unknown entry, or the source's own error when it has an Error method. An
// iterator that stopped with no error reached the end of its input.
func (c *compactionIter) Error() error {
	if c.err != nil {
		return c.err
	}
	if e, ok := c.src.(interface{ Error() error }); ok {
		return e.Error()
	}
	return nil
}

// Stats returns the counters so far.
func (c *compactionIter) Stats() compactionStats { return c.stats }

// settle advances the source from its current entry (ok reports whether it
// has one) to the next entry to keep.
func (c *compactionIter) settle(ok bool) bool {
	for ; ok; ok = c.src.Next() {
		k := c.src.Key()
		if !c.track(k) {
			return false
		}
		c.stats.In++
		if c.keep(k) {
			c.key, c.valid = k, true
			c.stats.Kept++
			return true
		}
	}
	return false
}

// track updates the per-key state with the entry k, checking its order. A
// new user key is copied and its stripe set above every real one, so that
// its first version always opens a stripe in keep. It returns false and
// records an error on bad input.
func (c *compactionIter) track(k base.InternalKey) bool {
	if k.Kind() > base.KindMax {
		c.err = base.CorruptionErrorf("lsm: compaction input %s has an unknown kind", k)
		return false
	}
	if c.haveKey {
		switch cmp := bytes.Compare(k.UserKey, c.userKey); {
		case cmp < 0 || (cmp == 0 && k.Trailer >= c.trailer):
			c.err = base.CorruptionErrorf("lsm: compaction input out of order: %s after %q#%d,%s",
				k, c.userKey, base.TrailerSeq(c.trailer), base.TrailerKind(c.trailer))
			return false
		case cmp == 0:
			c.trailer = k.Trailer
			return true
		}
	}
	c.userKey = append(c.userKey[:0], k.UserKey...)
	c.haveKey, c.trailer = true, k.Trailer
	c.stripe = len(c.snapshots) + 1 // above every stripe: the first version opens one
	c.keyDropped = c.namespaceDropped(k.UserKey)
	return true
}

// keep decides whether the entry k, already tracked, goes to the output,
// counting it if not.
func (c *compactionIter) keep(k base.InternalKey) bool {
	if c.keyDropped {
		c.stats.DroppedNamespace++
		return false
	}
	s := c.stripeOf(k.Seq())
	if s == c.stripe {
		c.stats.DroppedVersions++
		return false
	}
	c.stripe = s
	if k.Kind() == base.KindDelete && c.bottommost && s == 0 {
		c.stats.DroppedTombstones++
		return false
	}
	return true
}

// stripeOf returns the index of the stripe holding seq: the number of
// snapshots below seq. The versions of one key come newest first, so a
// version usually falls in the stripe of the one before it; that case costs
// one comparison.
func (c *compactionIter) stripeOf(seq base.SeqNum) int {
	s := min(c.stripe, len(c.snapshots))
	if s == 0 || seq > c.snapshots[s-1] {
		if s == len(c.snapshots) || seq <= c.snapshots[s] {
			return s
		}
	}
	i, _ := slices.BinarySearch(c.snapshots, seq)
	return i
}

// namespaceDropped reports whether key belongs to a dropped namespace,
// asking c.dropped once per run of one namespace.
func (c *compactionIter) namespaceDropped(key []byte) bool {
	if c.dropped == nil {
		return false
	}
	id, _, ok := base.SplitNamespace(key)
	if !ok {
		return false
	}
	if !c.nsKnown || id != c.ns {
		c.ns, c.nsDrop, c.nsKnown = id, c.dropped(id), true
	}
	return c.nsDrop
}

// splitter decides where a compaction cuts its output into tables: before
// the first key of a new user key once the table holds targetSize bytes.
// It never cuts between two versions of one user key, so tables below level
// 0 never share a user key. A splitter is for one goroutine; it copies the
// keys it is shown.
type splitter struct {
	targetSize int64 // <= 0: never split
	lastKey    []byte
	haveKey    bool
}

// shouldSplitBefore reports whether the current output table must be
// finished before key is written to a new one, given the bytes written to
// the current table so far. Call it for every key written, in order; an
// empty table (written == 0) is never cut.
func (s *splitter) shouldSplitBefore(key base.InternalKey, written int64) bool {
	if s.haveKey && bytes.Equal(key.UserKey, s.lastKey) {
		return false
	}
	split := s.haveKey && s.targetSize > 0 && written > 0 && written >= s.targetSize
	s.lastKey = append(s.lastKey[:0], key.UserKey...)
	s.haveKey = true
	return split
}

// reset forgets the last key, for reuse by another compaction.
func (s *splitter) reset() {
	s.lastKey, s.haveKey = s.lastKey[:0], false
}
