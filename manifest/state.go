package manifest

import (
	"fmt"

	"github.com/stratadb/strata/internal/base"
)

// State holds the scalars of the version set that are not part of a
// Version: they only grow, edit after edit. It is a plain value.
type State struct {
	// LogNumber is the number of the oldest WAL the store still needs
	// (0: none recorded yet); older WALs are obsolete.
	LogNumber uint64
	// NextFileNumber is the next file number to allocate. Every table,
	// WAL and manifest the store holds has a smaller number.
	NextFileNumber uint64
	// LastSeqNum is at least the largest sequence number of any table.
	LastSeqNum base.SeqNum
}

// Apply returns s updated by e's scalars (those set, that is nonzero). A
// scalar that would go backwards is an error wrapping base.ErrCorruption,
// and s is returned unchanged.
func (s State) Apply(e *VersionEdit) (State, error) {
	n := s
	if e.LogNumber != 0 {
		n.LogNumber = e.LogNumber
	}
	if e.NextFileNumber != 0 {
		n.NextFileNumber = e.NextFileNumber
	}
	if e.LastSeqNum != 0 {
		n.LastSeqNum = e.LastSeqNum
	}
	switch {
	case n.LogNumber < s.LogNumber:
		return s, base.CorruptionErrorf("manifest: log number goes back from %d to %d", s.LogNumber, n.LogNumber)
	case n.NextFileNumber < s.NextFileNumber:
		return s, base.CorruptionErrorf("manifest: next file number goes back from %d to %d", s.NextFileNumber, n.NextFileNumber)
	case n.LastSeqNum < s.LastSeqNum:
		return s, base.CorruptionErrorf("manifest: last sequence number goes back from %d to %d", s.LastSeqNum, n.LastSeqNum)
	}
	return n, nil
}

// Validate checks that v and s agree, as they must after every edit: the
// next file number is set and above every table's number and the log
// number, and the last sequence number is at least every table's largest.
// It returns an error wrapping base.ErrCorruption otherwise. It takes time
// in the number of tables.
func Validate(v *Version, s State) error {
	if s.NextFileNumber == 0 {
		return base.CorruptionErrorf("manifest: no next file number")
	}
	if s.LogNumber > s.NextFileNumber {
		return base.CorruptionErrorf("manifest: log number %d above the next file number %d", s.LogNumber, s.NextFileNumber)
	}
	for level, files := range v.levels {
		for _, f := range files {
			if err := checkTable(level, f, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkTable checks one table of level against s.
func checkTable(level int, f *FileMetadata, s State) error {
	if f.FileNum >= s.NextFileNumber {
		return base.CorruptionErrorf("manifest: L%d table %06d not below the next file number %d", level, f.FileNum, s.NextFileNumber)
	}
	if f.LargestSeq > s.LastSeqNum {
		return base.CorruptionErrorf("manifest: L%d table %06d holds sequence number %d above the last %d",
			level, f.FileNum, f.LargestSeq, s.LastSeqNum)
	}
	return nil
}

// SnapshotEdit returns an edit that rebuilds v and s from nothing: the first
// record of every manifest (see Create). Applied to an empty Builder and a
// zero State, it gives a version with the same tables, namespaces, dropped
// ids and next namespace id as v, and s. The edit holds v's *FileMetadata
// (decoding its encoding gives equal copies); the caller must not modify
// them.
func SnapshotEdit(v *Version, s State) *VersionEdit {
	e := &VersionEdit{
		LogNumber:         s.LogNumber,
		NextFileNumber:    s.NextFileNumber,
		LastSeqNum:        s.LastSeqNum,
		CreatedNamespaces: v.Namespaces(),
		DroppedNamespaces: v.DroppedNamespaces(),
	}
	if next := v.NextNamespaceID(); next != FirstNamespaceID {
		e.NextNamespaceID = next
	}
	for level, files := range v.levels {
		for _, f := range files {
			e.NewFiles = append(e.NewFiles, NewFile{Level: level, Meta: f})
		}
	}
	return e
}

// String describes s.
func (s State) String() string {
	return fmt.Sprintf("log %d, next file %d, last seq %d", s.LogNumber, s.NextFileNumber, s.LastSeqNum)
}
