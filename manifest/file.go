package manifest

import (
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/stratadb/strata/internal/base"
)

// FileMetadata describes one table of a version. Its exported fields are
// fixed once the table is in a version: a table is immutable, and a
// *FileMetadata is shared by every version that holds the table (a table
// moved to another level keeps its *FileMetadata, see Builder.Apply). Read
// them from any goroutine; never modify them.
type FileMetadata struct {
	// FileNum is the table's file number (never 0).
	FileNum uint64
	// Size is the table file's size in bytes.
	Size uint64
	// Smallest and Largest are the table's smallest and largest internal
	// keys (bounds included). Their user keys carry the namespace prefix.
	Smallest, Largest base.InternalKey
	// SmallestSeq and LargestSeq bound the sequence numbers of the table's
	// entries.
	SmallestSeq, LargestSeq base.SeqNum
	// Namespaces optionally lists the ids of the namespaces with keys in
	// the table, strictly increasing; nil means unknown.
	Namespaces []base.NamespaceID

	// refs counts the versions that hold the table (see Version.Unref).
	refs atomic.Int32
}

// Refs returns the number of versions (built and not yet released) that
// hold the table. It is safe for concurrent use.
func (m *FileMetadata) Refs() int32 { return m.refs.Load() }

// String describes the table, as "000012:[a#5,SET-c#3,SET] seq 3..5 1024B".
func (m *FileMetadata) String() string {
	return fmt.Sprintf("%06d:[%s-%s] seq %d..%d %dB",
		m.FileNum, m.Smallest, m.Largest, m.SmallestSeq, m.LargestSeq, m.Size)
}

// validate checks that m could be a table's metadata: a file number, ordered
// bounds, valid kinds, sequence numbers in range and sorted namespace ids.
func (m *FileMetadata) validate() error {
	switch {
	case m.FileNum == 0:
		return fmt.Errorf("file number 0")
	case m.Smallest.Kind() > base.KindMax || m.Largest.Kind() > base.KindMax:
		return fmt.Errorf("table %06d: bound with an unknown kind", m.FileNum)
	case base.CompareInternal(m.Smallest, m.Largest) > 0:
		return fmt.Errorf("table %06d: smallest key %s above largest %s", m.FileNum, m.Smallest, m.Largest)
	case m.SmallestSeq > m.LargestSeq || m.LargestSeq > base.MaxSeqNum:
		return fmt.Errorf("table %06d: bad sequence range %d..%d", m.FileNum, m.SmallestSeq, m.LargestSeq)
	}
	for i, id := range m.Namespaces {
		if id > base.MaxNamespaceID || (i > 0 && id <= m.Namespaces[i-1]) {
			return fmt.Errorf("table %06d: namespace ids not strictly increasing or out of range", m.FileNum)
		}
	}
	return nil
}

// sameTable tells whether m and o describe the same table (all exported
// fields equal).
func (m *FileMetadata) sameTable(o *FileMetadata) bool {
	return m.FileNum == o.FileNum && m.Size == o.Size &&
		base.CompareInternal(m.Smallest, o.Smallest) == 0 &&
		base.CompareInternal(m.Largest, o.Largest) == 0 &&
		m.SmallestSeq == o.SmallestSeq && m.LargestSeq == o.LargestSeq &&
		slices.Equal(m.Namespaces, o.Namespaces)
}
