package manifest

// A version edit is the payload of one manifest record (the record framing,
// with its CRC32C, is the WAL's, applied by the engine's RecordWriter). It
// is a format version byte followed by tagged, length-prefixed fields:
//
//	edit  := version field*
//	field := tag (uvarint) | length (uvarint) | body (length bytes)
//
//	version  1 byte, the format version of the edit: 1. Any other value is
//	         rejected (a later version bumps it).
//	tag      which field (table below). Tags appear in non-decreasing order,
//	         and the single-valued tags (1, 2, 3, 7) at most once; an unknown
//	         tag is rejected, never skipped.
//	length   the body's length; the body must be exactly consumed by its
//	         field's grammar and may not run past the end of the edit.
//
//	tag field              body                                   Go field
//	 1  log number         uvarint > 0                            LogNumber
//	 2  next file number   uvarint > 0                            NextFileNumber
//	 3  last sequence num  uvarint, 0 < n <= base.MaxSeqNum       LastSeqNum
//	 4  deleted file       level | file number                    DeletedFiles[i]
//	 5  new file           level | file number | size |           NewFiles[i]
//	                       smallest seq | largest seq |
//	                       key(smallest) | key(largest) |
//	                       namespace count | namespace id*
//	 6  created namespace  id | name (the rest of the body)        CreatedNamespaces[i]
//	 7  next namespace id  uvarint, 0 < n <= base.MaxNamespaceID+1  NextNamespaceID
//	 8  dropped namespace  id                                     DroppedNamespaces[i]
//
//	level         uvarint < NumLevels (7)
//	file number   uvarint > 0
//	size, seqs    uvarint (seqs <= base.MaxSeqNum)
//	key(k)        uvarint n >= 8, then n bytes: base.InternalKey.Encode
//	              (user key, then the 8-byte little-endian trailer)
//	namespace id  uvarint <= base.MaxNamespaceID; the ids of a new file are
//	              strictly increasing; the count is at most the bytes left
//
// Fields whose Go value is zero (or empty) are not written: a zero scalar
// means "unchanged". Every uvarint is at most 10 bytes (encoding/binary).
// An edit applies in tag order: the scalars, then deletions, additions,
// created namespaces, the next namespace id, and drops (see Builder.Apply).
//
// Worked example: an edit that sets the next file number to 5 and deletes
// file 3 from level 1 is 8 bytes:
//
//	01           format version 1
//	02 01 05     tag 2 (next file number), length 1, 5
//	04 02 01 03  tag 4 (deleted file), length 2, level 1, file 3
//
// These constants are part of the file format and should not be changed.

import (
	"encoding/binary"

	"github.com/stratadb/strata/internal/base"
)

// These constants are part of the file format and should not be changed.
const (
	editVersion byte = 1

	tagLogNumber        = 1
	tagNextFileNumber   = 2
	tagLastSeqNum       = 3
	tagDeletedFile      = 4
	tagNewFile          = 5
	tagCreatedNamespace = 6
	tagNextNamespaceID  = 7
	tagDroppedNamespace = 8
	tagMax              = tagDroppedNamespace
)

// VersionEdit is one change to the version set: the payload of one manifest
// record. The zero value is an empty edit. A VersionEdit is a plain value
// with no synchronization; one goroutine at a time may use it.
type VersionEdit struct {
	// LogNumber, when nonzero, is the number of the oldest WAL whose
	// records the store still needs: every older WAL is obsolete.
	LogNumber uint64
	// NextFileNumber, when nonzero, is the next file number to allocate;
	// every file the store holds has a smaller number.
	NextFileNumber uint64
	// LastSeqNum, when nonzero, is the largest sequence number held by any
	// table of the version.
	LastSeqNum base.SeqNum
	// DeletedFiles are tables removed from the version.
	DeletedFiles []DeletedFile
	// NewFiles are tables added to the version (after the deletions, so
	// that a table moved between levels is deleted and added in one edit).
	NewFiles []NewFile
	// CreatedNamespaces are namespaces created, by id and name.
	CreatedNamespaces []Namespace
	// NextNamespaceID, when nonzero, is the smallest id a later namespace
	// may take (ids are never reused).
	NextNamespaceID base.NamespaceID
	// DroppedNamespaces are the ids of namespaces dropped.
	DroppedNamespaces []base.NamespaceID
}

// DeletedFile names a table removed from a level.
type DeletedFile struct {
	Level   int
	FileNum uint64
}

// NewFile is a table added to a level.
type NewFile struct {
	Level int
	Meta  *FileMetadata
}

// Namespace is a namespace's id and name.
type Namespace struct {
	ID   base.NamespaceID
	Name string
}

// Encode appends the encoding of e to dst and returns the extended slice.
// e must be valid (Writer.Append and Builder.Apply check it): levels in
// range, no nil Meta, ids and sequence numbers within their bounds. It
// allocates nothing when dst has room.
func (e *VersionEdit) Encode(dst []byte) []byte {
	dst = append(dst, editVersion)
	dst = appendScalar(dst, tagLogNumber, e.LogNumber)
	dst = appendScalar(dst, tagNextFileNumber, e.NextFileNumber)
	dst = appendScalar(dst, tagLastSeqNum, e.LastSeqNum)
	for _, d := range e.DeletedFiles {
		n := uvarintLen(uint64(d.Level)) + uvarintLen(d.FileNum)
		dst = appendHeader(dst, tagDeletedFile, n)
		dst = binary.AppendUvarint(dst, uint64(d.Level))
		dst = binary.AppendUvarint(dst, d.FileNum)
	}
	for _, f := range e.NewFiles {
		dst = appendNewFile(dst, f)
	}
	for _, ns := range e.CreatedNamespaces {
		dst = appendHeader(dst, tagCreatedNamespace, uvarintLen(uint64(ns.ID))+len(ns.Name))
		dst = binary.AppendUvarint(dst, uint64(ns.ID))
		dst = append(dst, ns.Name...)
	}
	dst = appendScalar(dst, tagNextNamespaceID, uint64(e.NextNamespaceID))
	for _, id := range e.DroppedNamespaces {
		dst = appendHeader(dst, tagDroppedNamespace, uvarintLen(uint64(id)))
		dst = binary.AppendUvarint(dst, uint64(id))
	}
	return dst
}

// appendHeader appends a field's tag and body length.
func appendHeader(dst []byte, tag, n int) []byte {
	dst = binary.AppendUvarint(dst, uint64(tag))
	return binary.AppendUvarint(dst, uint64(n))
}

// appendScalar appends a single-uvarint field, unless v is zero.
func appendScalar(dst []byte, tag int, v uint64) []byte {
	if v == 0 {
		return dst
	}
	dst = appendHeader(dst, tag, uvarintLen(v))
	return binary.AppendUvarint(dst, v)
}

// appendNewFile appends a new-file field.
func appendNewFile(dst []byte, f NewFile) []byte {
	m := f.Meta
	sk, lk := m.Smallest.EncodedLen(), m.Largest.EncodedLen()
	n := uvarintLen(uint64(f.Level)) + uvarintLen(m.FileNum) + uvarintLen(m.Size) +
		uvarintLen(m.SmallestSeq) + uvarintLen(m.LargestSeq) +
		uvarintLen(uint64(sk)) + sk + uvarintLen(uint64(lk)) + lk +
		uvarintLen(uint64(len(m.Namespaces)))
	for _, id := range m.Namespaces {
		n += uvarintLen(uint64(id))
	}
	dst = appendHeader(dst, tagNewFile, n)
	for _, v := range [...]uint64{uint64(f.Level), m.FileNum, m.Size, m.SmallestSeq, m.LargestSeq} {
		dst = binary.AppendUvarint(dst, v)
	}
	dst = binary.AppendUvarint(dst, uint64(sk))
	dst = m.Smallest.Encode(dst)
	dst = binary.AppendUvarint(dst, uint64(lk))
	dst = m.Largest.Encode(dst)
	dst = binary.AppendUvarint(dst, uint64(len(m.Namespaces)))
	for _, id := range m.Namespaces {
		dst = binary.AppendUvarint(dst, uint64(id))
	}
	return dst
}

// uvarintLen is the length of v's uvarint encoding.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
