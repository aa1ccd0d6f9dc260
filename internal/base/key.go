// Package base holds the small vocabulary every strata package shares:
// internal keys (user key, sequence number, kind), namespace prefixes and the
// corruption error. It has no public promise; package lsm re-exports what
// users need.
package base

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// SeqNum orders every write of a store. A commit of n entries takes the n
// consecutive numbers starting at its batch's base sequence number.
type SeqNum = uint64

// MaxSeqNum is the largest sequence number a trailer can hold (56 bits).
const MaxSeqNum SeqNum = 1<<56 - 1

// Kind tells what an internal key records.
//
// These constants are part of the file format and should not be changed.
type Kind uint8

const (
	// KindDelete is a tombstone: the key has no value at this sequence number.
	KindDelete Kind = 0
	// KindSet carries a value.
	KindSet Kind = 1
	// KindMax is the largest valid kind.
	KindMax = KindSet
)

func (k Kind) String() string {
	switch k {
	case KindDelete:
		return "DEL"
	case KindSet:
		return "SET"
	}
	return fmt.Sprintf("KIND(%d)", uint8(k))
}

// MakeTrailer packs a sequence number and a kind into the 8-byte trailer
// that follows a user key: seq<<8 | kind. For one user key, a larger trailer
// is a newer version and sorts first.
func MakeTrailer(seq SeqNum, kind Kind) uint64 { return seq<<8 | uint64(kind) }

// TrailerSeq returns the sequence number of a trailer.
func TrailerSeq(t uint64) SeqNum { return t >> 8 }

// TrailerKind returns the kind of a trailer.
func TrailerKind(t uint64) Kind { return Kind(t & 0xff) }

// InternalKey is a user key with its trailer.
type InternalKey struct {
	UserKey []byte
	Trailer uint64
}

// Seq returns the key's sequence number.
func (k InternalKey) Seq() SeqNum { return TrailerSeq(k.Trailer) }

// Kind returns the key's kind.
func (k InternalKey) Kind() Kind { return TrailerKind(k.Trailer) }

func (k InternalKey) String() string {
	return fmt.Sprintf("%q#%d,%s", k.UserKey, k.Seq(), k.Kind())
}

// CompareInternal orders internal keys by user key ascending, then by
// trailer descending (newest version first).
func CompareInternal(a, b InternalKey) int {
	if c := bytes.Compare(a.UserKey, b.UserKey); c != 0 {
		return c
	}
	switch {
	case a.Trailer > b.Trailer:
		return -1
	case a.Trailer < b.Trailer:
		return 1
	}
	return 0
}

// EncodedLen is the length of k's encoding.
func (k InternalKey) EncodedLen() int { return len(k.UserKey) + 8 }

// Encode appends the encoding of k to dst: the user key followed by the
// trailer as 8 little-endian bytes.
//
//	+-----------------+----------------------------------+
//	| user key (n B)  | trailer = seq<<8 | kind (8 B, LE) |
//	+-----------------+----------------------------------+
//
// This encoding is part of the file format and should not be changed.
func (k InternalKey) Encode(dst []byte) []byte {
	dst = append(dst, k.UserKey...)
	return binary.LittleEndian.AppendUint64(dst, k.Trailer)
}

// DecodeInternalKey parses an encoded internal key. The returned user key
// aliases b. It fails on input shorter than a trailer or with an unknown kind.
func DecodeInternalKey(b []byte) (InternalKey, error) {
	if len(b) < 8 {
		return InternalKey{}, CorruptionErrorf("internal key of %d bytes is shorter than its trailer", len(b))
	}
	n := len(b) - 8
	t := binary.LittleEndian.Uint64(b[n:])
	if TrailerKind(t) > KindMax {
		return InternalKey{}, CorruptionErrorf("internal key has unknown kind %d", TrailerKind(t))
	}
	return InternalKey{UserKey: b[:n:n], Trailer: t}, nil
}
