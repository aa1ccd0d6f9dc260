package lsm

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/stratadb/strata/internal/base"
)

// Snapshot is a consistent, read-only view of the committed data as of the
// moment it was taken: Get and NewIterator on it see exactly the commits
// made before, however many commits follow. It pins the versions it needs
// until Close, so close it when done. A Snapshot is safe for concurrent use.
// After Close, or after the DB is closed, its methods return ErrClosed.
type Snapshot struct {
	db  *DB
	seq base.SeqNum
	// mu is held for reading by every read from its check of closed until
	// it has loaded what it reads (a Get) or built its iterator, and for
	// writing by Close: a read racing Close either fails with ErrClosed or
	// reads with seq still pinned, never versions compaction dropped.
	mu     sync.RWMutex
	closed bool
}

var _ Reader = (*Snapshot)(nil)

// snapshotList holds the sequence numbers pinned by open snapshots and
// iterators, so that compaction keeps every version they may read.
type snapshotList struct {
	mu   sync.Mutex
	seqs []base.SeqNum // sorted, with repeats
}

func (l *snapshotList) add(seq base.SeqNum) {
	l.mu.Lock()
	i, _ := slices.BinarySearch(l.seqs, seq)
	l.seqs = slices.Insert(l.seqs, i, seq)
	l.mu.Unlock()
}

func (l *snapshotList) remove(seq base.SeqNum) {
	l.mu.Lock()
	if i, ok := slices.BinarySearch(l.seqs, seq); ok {
		l.seqs = slices.Delete(l.seqs, i, i+1)
	}
	l.mu.Unlock()
}

// pin adds and returns the sequence number visible now. It is read under
// the list's lock: a flush or compaction that lists the snapshots before
// the pin only holds versions at or below the visible sequence number (a
// flush waits for its commits to be visible), so every version this
// snapshot needs is the newest of its key in the flush's or compaction's
// top stripe, and kept.
func (l *snapshotList) pin(visible *atomic.Uint64) base.SeqNum {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := visible.Load()
	i, _ := slices.BinarySearch(l.seqs, seq)
	l.seqs = slices.Insert(l.seqs, i, seq)
	return seq
}

// list returns a copy of the pinned sequence numbers, ascending.
func (l *snapshotList) list() []base.SeqNum {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seqs)
}

// NewSnapshot pins the current committed state. On a closed DB it returns
// ErrClosed.
func (d *DB) NewSnapshot() (*Snapshot, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	return &Snapshot{db: d, seq: d.snapshots.pin(&d.visibleSeq)}, nil
}

// hold read-locks s.mu for a read and returns nil, or returns why s
// cannot be read, with s.mu unlocked. After a nil return the caller calls
// s.mu.RUnlock once it has read.
func (s *Snapshot) hold() error {
	if s == nil {
		return ErrClosed
	}
	s.mu.RLock()
	err := s.db.check()
	if s.closed {
		err = ErrClosed
	}
	if err != nil {
		s.mu.RUnlock()
	}
	return err
}

// Get returns a copy of key's value as of the snapshot, or ErrNotFound.
func (s *Snapshot) Get(key []byte) ([]byte, error) {
	if err := s.hold(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	return copyValue(s.db.getAt(key, s.seq))
}

// AppendValue appends key's value as of the snapshot to dst and returns
// the extended slice, or ErrNotFound. With room in dst it allocates
// nothing.
func (s *Snapshot) AppendValue(dst, key []byte) ([]byte, error) {
	if err := s.hold(); err != nil {
		return dst, err
	}
	defer s.mu.RUnlock()
	v, err := s.db.getAt(key, s.seq)
	return appendValue(dst, v, err)
}

// NewIterator returns an iterator over the snapshot's data. The iterator
// keeps reading the snapshot's data after the snapshot is closed.
func (s *Snapshot) NewIterator(o *IterOptions) (*Iterator, error) {
	if err := s.hold(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	return s.db.newIterator(base.DefaultNamespace, o, nil, s.seq), nil
}

// Seq returns the sequence number the snapshot reads at.
func (s *Snapshot) Seq() uint64 { return s.seq }

// Close releases the snapshot. Closing twice is harmless.
func (s *Snapshot) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.db.snapshots.remove(s.seq)
	}
	return nil
}
