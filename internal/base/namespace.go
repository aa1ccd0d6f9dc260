package base

// A namespace id prefixes every user key stored by the engine, so that each
// namespace is a contiguous, separately droppable key range. Id 0 is reserved
// for the engine (committed offsets); DefaultNamespace holds the plain API's
// keys.
//
// The prefix is an order-preserving variable-length encoding, so that the
// byte order of prefixed keys is (namespace id, user key):
//
//	id < 1<<7             1 byte   0xxxxxxx
//	id < 1<<14            2 bytes  10xxxxxx xxxxxxxx           (big-endian)
//	id < 1<<29            4 bytes  110xxxxx xxxxxxxx x8 x8      (big-endian)
//
// This encoding is part of the file format and should not be changed.

// NamespaceID identifies a namespace.
type NamespaceID = uint32

const (
	// EngineNamespace holds the engine's own keys (committed offsets).
	EngineNamespace NamespaceID = 0
	// DefaultNamespace holds the keys of DB.Get, DB.Set and Txn.Set.
	DefaultNamespace NamespaceID = 1
	// MaxNamespaceID is the largest encodable namespace id.
	MaxNamespaceID NamespaceID = 1<<29 - 1
)

// NamespacePrefixLen is the length of id's prefix.
func NamespacePrefixLen(id NamespaceID) int {
	switch {
	case id < 1<<7:
		return 1
	case id < 1<<14:
		return 2
	}
	return 4
}

// AppendNamespace appends the prefix of id to dst. Ids above MaxNamespaceID
// are a programming error and are truncated to 29 bits.
func AppendNamespace(dst []byte, id NamespaceID) []byte {
	switch {
	case id < 1<<7:
		return append(dst, byte(id))
	case id < 1<<14:
		return append(dst, 0x80|byte(id>>8), byte(id))
	}
	id &= MaxNamespaceID
	return append(dst, 0xc0|byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
}

// SplitNamespace splits a prefixed key into its namespace id and the user's
// key. ok is false when key does not start with a valid prefix.
func SplitNamespace(key []byte) (id NamespaceID, rest []byte, ok bool) {
	if len(key) == 0 {
		return 0, nil, false
	}
	b := key[0]
	switch {
	case b < 0x80:
		return NamespaceID(b), key[1:], true
	case b < 0xc0:
		if len(key) < 2 {
			return 0, nil, false
		}
		return NamespaceID(b&0x3f)<<8 | NamespaceID(key[1]), key[2:], true
	case b < 0xe0:
		if len(key) < 4 {
			return 0, nil, false
		}
		return NamespaceID(b&0x1f)<<24 | NamespaceID(key[1])<<16 | NamespaceID(key[2])<<8 | NamespaceID(key[3]), key[4:], true
	}
	return 0, nil, false
}

// NamespaceUpperBound returns the smallest prefixed key above every key of
// namespace id: the prefix of id+1. For MaxNamespaceID it returns nil (no
// bound).
func NamespaceUpperBound(id NamespaceID) []byte {
	if id >= MaxNamespaceID {
		return nil
	}
	return AppendNamespace(nil, id+1)
}
