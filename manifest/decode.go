package manifest

import (
	"encoding/binary"
	"fmt"

	"github.com/stratadb/strata/internal/base"
)

// Decode parses an edit encoded by VersionEdit.Encode (the format is at the
// top of edit.go). It does not retain b: keys and names are copied, one
// allocation per new file for both of its keys. Damage of any kind (a
// truncation, a length or count running past the end, an unknown tag or
// format version, a value out of range, tags out of order) is reported as
// an error wrapping base.ErrCorruption that gives the byte offset; Decode
// never panics, and it allocates at most a small multiple of len(b).
//
// Decode is safe for concurrent use.
func Decode(b []byte) (VersionEdit, error) {
	var e VersionEdit
	if len(b) == 0 {
		return e, base.CorruptionErrorf("manifest: version edit is empty")
	}
	if b[0] != editVersion {
		return e, base.CorruptionErrorf("manifest: version edit has unknown format version %d", b[0])
	}
	d := decoder{b: b, off: 1}
	lastTag := uint64(0)
	for d.off < len(b) {
		start := d.off
		tag, err := d.uvarint("field tag")
		if err != nil {
			return VersionEdit{}, err
		}
		if tag == 0 || tag > tagMax {
			return VersionEdit{}, d.errAt(start, fmt.Sprintf("unknown field tag %d", tag))
		}
		if tag < lastTag || (tag == lastTag && isScalarTag(tag)) {
			return VersionEdit{}, d.errAt(start, fmt.Sprintf("field tag %d after tag %d", tag, lastTag))
		}
		lastTag = tag
		body, err := d.body()
		if err != nil {
			return VersionEdit{}, err
		}
		if err := e.decodeField(tag, &body); err != nil {
			return VersionEdit{}, err
		}
		if body.off != len(body.b) {
			return VersionEdit{}, body.errAt(body.off, fmt.Sprintf("%d trailing bytes in field %d", len(body.b)-body.off, tag))
		}
	}
	return e, nil
}

// isScalarTag tells whether tag is a single-valued field.
func isScalarTag(tag uint64) bool {
	switch tag {
	case tagLogNumber, tagNextFileNumber, tagLastSeqNum, tagNextNamespaceID:
		return true
	}
	return false
}

// decodeField parses the body of one field into e.
func (e *VersionEdit) decodeField(tag uint64, d *decoder) error {
	var err error
	switch tag {
	case tagLogNumber:
		e.LogNumber, err = d.nonzero("log number", 1<<64-1)
	case tagNextFileNumber:
		e.NextFileNumber, err = d.nonzero("next file number", 1<<64-1)
	case tagLastSeqNum:
		e.LastSeqNum, err = d.nonzero("last sequence number", base.MaxSeqNum)
	case tagDeletedFile:
		var f DeletedFile
		if f.Level, err = d.level(); err == nil {
			f.FileNum, err = d.nonzero("file number", 1<<64-1)
		}
		e.DeletedFiles = append(e.DeletedFiles, f)
	case tagNewFile:
		var f NewFile
		f, err = d.newFile()
		e.NewFiles = append(e.NewFiles, f)
	case tagCreatedNamespace:
		var ns Namespace
		ns.ID, err = d.namespaceID()
		ns.Name = string(d.b[d.off:])
		d.off = len(d.b)
		e.CreatedNamespaces = append(e.CreatedNamespaces, ns)
	case tagNextNamespaceID:
		var v uint64
		v, err = d.nonzero("next namespace id", uint64(base.MaxNamespaceID)+1)
		e.NextNamespaceID = base.NamespaceID(v)
	case tagDroppedNamespace:
		var id base.NamespaceID
		id, err = d.namespaceID()
		e.DroppedNamespaces = append(e.DroppedNamespaces, id)
	default: // Decode checks the tag first
		return d.errAt(0, fmt.Sprintf("unknown field tag %d", tag))
	}
	return err
}

// newFile parses the body of a new-file field.
func (d *decoder) newFile() (NewFile, error) {
	var f NewFile
	var err error
	if f.Level, err = d.level(); err != nil {
		return f, err
	}
	m := &FileMetadata{}
	if m.FileNum, err = d.nonzero("file number", 1<<64-1); err != nil {
		return f, err
	}
	if m.Size, err = d.uvarint("file size"); err != nil {
		return f, err
	}
	if m.SmallestSeq, err = d.bounded("smallest sequence number", base.MaxSeqNum); err != nil {
		return f, err
	}
	if m.LargestSeq, err = d.bounded("largest sequence number", base.MaxSeqNum); err != nil {
		return f, err
	}
	if err := d.keys(m); err != nil {
		return f, err
	}
	if m.Namespaces, err = d.namespaceList(); err != nil {
		return f, err
	}
	f.Meta = m
	return f, nil
}

// keys parses the smallest and largest keys of a new file into m, copying
// both into one allocation.
func (d *decoder) keys(m *FileMetadata) error {
	sk, err := d.bytes("smallest key")
	if err != nil {
		return err
	}
	lk, err := d.bytes("largest key")
	if err != nil {
		return err
	}
	buf := make([]byte, 0, len(sk)+len(lk))
	buf = append(append(buf, sk...), lk...)
	if m.Smallest, err = base.DecodeInternalKey(buf[:len(sk)]); err != nil {
		return fmt.Errorf("manifest: version edit: smallest key before byte %d: %w", d.base+d.off, err)
	}
	if m.Largest, err = base.DecodeInternalKey(buf[len(sk):]); err != nil {
		return fmt.Errorf("manifest: version edit: largest key before byte %d: %w", d.base+d.off, err)
	}
	return nil
}

// namespaceList parses a new file's namespace count and ids.
func (d *decoder) namespaceList() ([]base.NamespaceID, error) {
	start := d.off
	n, err := d.uvarint("namespace count")
	if err != nil || n == 0 {
		return nil, err
	}
	if n > uint64(len(d.b)-d.off) {
		return nil, d.errAt(start, fmt.Sprintf("namespace count %d exceeds the %d bytes left", n, len(d.b)-d.off))
	}
	ids := make([]base.NamespaceID, n)
	for i := range ids {
		start := d.off
		if ids[i], err = d.namespaceID(); err != nil {
			return nil, err
		}
		if i > 0 && ids[i] <= ids[i-1] {
			return nil, d.errAt(start, fmt.Sprintf("namespace id %d after %d", ids[i], ids[i-1]))
		}
	}
	return ids, nil
}

// decoder reads uvarints and byte strings from b, reporting damage with the
// offset in the whole edit (base is the offset of b[0] in the edit).
type decoder struct {
	b    []byte
	off  int
	base int
}

// errAt returns a corruption error for damage at offset off of d.b.
func (d *decoder) errAt(off int, what string) error {
	return base.CorruptionErrorf("manifest: version edit: %s at byte %d", what, d.base+off)
}

// uvarint reads one uvarint.
func (d *decoder) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		if n == 0 {
			return 0, d.errAt(d.off, what+" cut short")
		}
		return 0, d.errAt(d.off, what+" overflows 64 bits")
	}
	d.off += n
	return v, nil
}

// bounded reads a uvarint that may not exceed max.
func (d *decoder) bounded(what string, max uint64) (uint64, error) {
	start := d.off
	v, err := d.uvarint(what)
	if err == nil && v > max {
		err = d.errAt(start, fmt.Sprintf("%s %d exceeds %d", what, v, max))
	}
	return v, err
}

// nonzero reads a uvarint in 1..max.
func (d *decoder) nonzero(what string, max uint64) (uint64, error) {
	start := d.off
	v, err := d.bounded(what, max)
	if err == nil && v == 0 {
		err = d.errAt(start, what+" is zero")
	}
	return v, err
}

// level reads a level number.
func (d *decoder) level() (int, error) {
	v, err := d.bounded("level", NumLevels-1)
	return int(v), err
}

// namespaceID reads a namespace id.
func (d *decoder) namespaceID() (base.NamespaceID, error) {
	v, err := d.bounded("namespace id", uint64(base.MaxNamespaceID))
	return base.NamespaceID(v), err
}

// bytes reads a length-prefixed byte string; the result aliases d.b.
func (d *decoder) bytes(what string) ([]byte, error) {
	start := d.off
	n, err := d.uvarint(what + " length")
	if err != nil {
		return nil, err
	}
	if n > uint64(len(d.b)-d.off) {
		return nil, d.errAt(start, fmt.Sprintf("%s length %d exceeds the %d bytes left", what, n, len(d.b)-d.off))
	}
	p := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return p, nil
}

// body reads a field's length and returns a decoder over its body.
func (d *decoder) body() (decoder, error) {
	p, err := d.bytes("field")
	if err != nil {
		return decoder{}, err
	}
	return decoder{b: p, base: d.base + d.off - len(p)}, nil
}
