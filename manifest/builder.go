package manifest

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"github.com/stratadb/strata/internal/base"
)

// Builder applies a sequence of edits to a base version and builds the
// resulting version, checking every step: a table deleted must be at the
// level the edit names, a table added must not be in the version already,
// namespaces are created with fresh ids and unique names, and (at Build)
// the tables of each level below 0 must not overlap. Every violation is an
// error wrapping base.ErrCorruption: from a manifest, damage; from the
// engine, a bug that must not reach the manifest.
//
// A Builder is for one goroutine at a time. Once Apply has failed, the
// Builder is spoiled: Apply and Build return that error. The base version
// is only read, and needs no reference while the Builder runs. Applying an
// edit costs time in the size of the levels it deletes from (each is
// indexed once per Builder) and in the number of tables it adds. Adding a
// table whose number is neither above every number of the base nor deleted
// before by the Builder indexes the whole base once; the engine never does
// that (new tables take new numbers, and a move deletes first).
type Builder struct {
	base *Version
	// added holds, per level, the tables of the version being built that
	// the base does not hold at that level; deleted, the base's tables
	// removed from it.
	added   [NumLevels]map[uint64]*FileMetadata
	deleted [NumLevels]map[uint64]bool
	// baseIdx indexes the base's levels by file number, built on demand.
	baseIdx [NumLevels]map[uint64]*FileMetadata
	// removed holds the tables deleted and not added back, so that a
	// table moved to another level keeps its *FileMetadata.
	removed map[uint64]*FileMetadata
	ns      *namespaces // nil until a namespace changes
	err     error
}

// NewBuilder returns a Builder whose edits apply to base; a nil base is the
// empty version.
func NewBuilder(base *Version) *Builder {
	if base == nil {
		base = &Version{}
	}
	return &Builder{base: base}
}

// Apply applies e: its deletions, then its additions, then its created
// namespaces, its next namespace id and its drops. A table may be deleted
// and added again (a move to another level) only with the same metadata;
// the version then holds the *FileMetadata it held before, whatever
// pointer e carries. The scalars (LogNumber, NextFileNumber, LastSeqNum)
// are not part of a version: see State.Apply. Apply does not retain e, but
// the version built holds e's *FileMetadata (the caller must not modify
// them).
func (b *Builder) Apply(e *VersionEdit) error {
	if b.err != nil {
		return b.err
	}
	if err := b.apply(e); err != nil {
		b.err = base.CorruptionErrorf("manifest: bad version edit: %v", err)
	}
	return b.err
}

func (b *Builder) apply(e *VersionEdit) error {
	if err := e.validate(); err != nil {
		return err
	}
	for _, d := range e.DeletedFiles {
		if err := b.delete(d); err != nil {
			return err
		}
	}
	for _, f := range e.NewFiles {
		if err := b.add(f); err != nil {
			return err
		}
	}
	return b.applyNamespaces(e)
}

// inBase returns the table numbered num that the base holds at level and
// the Builder has not deleted, or nil.
func (b *Builder) inBase(level int, num uint64) *FileMetadata {
	if b.deleted[level][num] || len(b.base.levels[level]) == 0 {
		return nil
	}
	if b.baseIdx[level] == nil {
		idx := make(map[uint64]*FileMetadata, len(b.base.levels[level]))
		for _, f := range b.base.levels[level] {
			idx[f.FileNum] = f
		}
		b.baseIdx[level] = idx
	}
	return b.baseIdx[level][num]
}

// find returns the level of table num in the version being built, or -1.
func (b *Builder) find(num uint64) int {
	for level := range NumLevels {
		if _, ok := b.added[level][num]; ok {
			return level
		}
	}
	if _, ok := b.removed[num]; ok || num > b.base.maxFileNum {
		return -1 // deleted (the base held it at one level only), or new
	}
	for level := range NumLevels {
		if b.inBase(level, num) != nil {
			return level
		}
	}
	return -1
}

// delete removes a table from the version.
func (b *Builder) delete(d DeletedFile) error {
	m, ok := b.added[d.Level][d.FileNum]
	if ok {
		delete(b.added[d.Level], d.FileNum)
	} else if m = b.inBase(d.Level, d.FileNum); m != nil {
		setAdd(&b.deleted[d.Level], d.FileNum, true)
	} else {
		return fmt.Errorf("deleted table %06d is not in L%d", d.FileNum, d.Level)
	}
	setAdd(&b.removed, d.FileNum, m)
	return nil
}

// add adds a table to the version.
func (b *Builder) add(f NewFile) error {
	m := f.Meta
	if level := b.find(m.FileNum); level >= 0 {
		return fmt.Errorf("added table %06d is already in L%d", m.FileNum, level)
	}
	if old, ok := b.removed[m.FileNum]; ok {
		if !old.sameTable(m) {
			return fmt.Errorf("table %06d added back with other metadata: %s, was %s", m.FileNum, m, old)
		}
		m = old
		delete(b.removed, m.FileNum) // removed holds only tables not in the version
	}
	if b.deleted[f.Level][m.FileNum] {
		delete(b.deleted[f.Level], m.FileNum) // back where the base has it
		return nil
	}
	setAdd(&b.added[f.Level], m.FileNum, m)
	return nil
}

// setAdd sets (*m)[k] = v, making the map if needed.
func setAdd[V any](m *map[uint64]V, k uint64, v V) {
	if *m == nil {
		*m = make(map[uint64]V)
	}
	(*m)[k] = v
}

// applyNamespaces applies e's namespace changes.
func (b *Builder) applyNamespaces(e *VersionEdit) error {
	if len(e.CreatedNamespaces) == 0 && e.NextNamespaceID == 0 && len(e.DroppedNamespaces) == 0 {
		return nil
	}
	if b.ns == nil {
		b.ns = b.base.ns.clone()
	}
	ns := b.ns
	for _, c := range e.CreatedNamespaces {
		if c.ID < ns.next {
			return fmt.Errorf("namespace %q created with id %d below the next id %d", c.Name, c.ID, ns.next)
		}
		if id, ok := ns.byName[c.Name]; ok {
			return fmt.Errorf("namespace %q created with id %d exists with id %d", c.Name, c.ID, id)
		}
		ns.byID[c.ID], ns.byName[c.Name] = c.Name, c.ID
		ns.next = c.ID + 1
	}
	if n := e.NextNamespaceID; n != 0 {
		if n < ns.next {
			return fmt.Errorf("next namespace id %d below %d", n, ns.next)
		}
		ns.next = n
	}
	for _, id := range e.DroppedNamespaces {
		if _, ok := ns.dropped[id]; ok || id >= ns.next {
			return fmt.Errorf("namespace %d dropped but it is already dropped or was never created", id)
		}
		if name, ok := ns.byID[id]; ok {
			delete(ns.byID, id)
			delete(ns.byName, name)
		}
		ns.dropped[id] = struct{}{}
	}
	return nil
}

// Build returns the version the edits applied so far make, holding one
// reference (see Version.Ref), or the error of a failed Apply, or an error
// wrapping base.ErrCorruption if tables of a level below 0 overlap. Levels
// no edit touched share the base's slices. Build may be called more than
// once; each call returns a new version.
func (b *Builder) Build() (*Version, error) {
	if b.err != nil {
		return nil, b.err
	}
	v := &Version{ns: b.base.ns, maxFileNum: b.base.maxFileNum}
	if b.ns != nil {
		v.ns = b.ns
		b.ns = b.ns.clone() // v's copy is frozen; later edits change this one
	}
	for level := range NumLevels {
		files, err := b.level(level)
		if err != nil {
			return nil, base.CorruptionErrorf("manifest: bad version: %v", err)
		}
		v.levels[level] = files
		for _, f := range files {
			v.sizes[level] += f.Size
		}
		for num := range b.added[level] {
			v.maxFileNum = max(v.maxFileNum, num)
		}
	}
	v.refs.Store(1)
	for _, files := range v.levels {
		for _, f := range files {
			f.refs.Add(1)
		}
	}
	return v, nil
}

// level returns the tables of a level of the version being built, in the
// level's order, checking that tables below level 0 do not overlap.
func (b *Builder) level(level int) ([]*FileMetadata, error) {
	old := b.base.levels[level]
	if len(b.added[level]) == 0 && len(b.deleted[level]) == 0 {
		return old, nil
	}
	files := make([]*FileMetadata, 0, len(old)+len(b.added[level])-len(b.deleted[level]))
	for _, f := range old {
		if !b.deleted[level][f.FileNum] {
			files = append(files, f)
		}
	}
	for _, f := range b.added[level] {
		files = append(files, f)
	}
	if level == 0 {
		slices.SortFunc(files, newestFirst)
		return files, nil
	}
	slices.SortFunc(files, bySmallest)
	for i := 1; i < len(files); i++ {
		if a, c := files[i-1], files[i]; bytes.Compare(a.Largest.UserKey, c.Smallest.UserKey) >= 0 {
			return nil, fmt.Errorf("L%d: tables %s and %s overlap", level, a, c)
		}
	}
	return files, nil
}

// newestFirst orders level 0: LargestSeq, SmallestSeq, then file number,
// all descending.
func newestFirst(a, b *FileMetadata) int {
	if c := cmp.Compare(b.LargestSeq, a.LargestSeq); c != 0 {
		return c
	}
	if c := cmp.Compare(b.SmallestSeq, a.SmallestSeq); c != 0 {
		return c
	}
	return cmp.Compare(b.FileNum, a.FileNum)
}

// bySmallest orders a level below 0: smallest key, then file number.
func bySmallest(a, b *FileMetadata) int {
	if c := base.CompareInternal(a.Smallest, b.Smallest); c != 0 {
		return c
	}
	return cmp.Compare(a.FileNum, b.FileNum)
}

// validate checks that e is well formed on its own: it could be encoded and
// decoded back. (Decode only returns well-formed edits.)
func (e *VersionEdit) validate() error {
	if e.LastSeqNum > base.MaxSeqNum {
		return fmt.Errorf("last sequence number %d above the maximum", e.LastSeqNum)
	}
	if e.NextNamespaceID > base.MaxNamespaceID+1 {
		return fmt.Errorf("next namespace id %d above the maximum", e.NextNamespaceID)
	}
	for _, d := range e.DeletedFiles {
		if d.Level < 0 || d.Level >= NumLevels || d.FileNum == 0 {
			return fmt.Errorf("deleted table %06d at level %d", d.FileNum, d.Level)
		}
	}
	for _, f := range e.NewFiles {
		if f.Level < 0 || f.Level >= NumLevels || f.Meta == nil {
			return fmt.Errorf("new table at level %d with metadata %v", f.Level, f.Meta)
		}
		if err := f.Meta.validate(); err != nil {
			return err
		}
	}
	for _, c := range e.CreatedNamespaces {
		if c.ID < FirstNamespaceID || c.ID > base.MaxNamespaceID {
			return fmt.Errorf("namespace %q created with reserved or invalid id %d", c.Name, c.ID)
		}
	}
	for _, id := range e.DroppedNamespaces {
		if id < FirstNamespaceID || id > base.MaxNamespaceID {
			return fmt.Errorf("reserved or invalid namespace id %d dropped", id)
		}
	}
	return nil
}
