package manifest

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/stratadb/strata/internal/base"
)

// NumLevels is the number of levels of the LSM tree, L0 to L6.
const NumLevels = 7

// FirstNamespaceID is the smallest id a created namespace may take: ids
// base.EngineNamespace and base.DefaultNamespace exist in every store and
// are never created, dropped or named in the manifest.
const FirstNamespaceID = base.DefaultNamespace + 1

// Version is one immutable state of the LSM tree: the tables of each level
// and the namespaces. Build one with a Builder.
//
// Level 0 holds tables that may overlap, newest first: by LargestSeq, then
// SmallestSeq, then file number, all descending. Each deeper level holds
// tables sorted by smallest key whose user-key ranges do not overlap (no
// user key spans two tables of a level).
//
// All methods are safe for concurrent use. Slices returned by Files and
// Overlaps are shared: never modify them; they stay valid for ever (a
// Version never changes), like the *FileMetadata they hold.
//
// Reference counting tells when a table is no longer held by any version:
// Builder.Build returns a version holding one reference; Ref and Unref
// count the users (the engine's current version, snapshots, iterators,
// compactions). When the last reference goes, Unref returns the tables no
// other live version holds.
type Version struct {
	levels [NumLevels][]*FileMetadata
	sizes  [NumLevels]uint64
	ns     *namespaces // nil: no namespace created or dropped
	refs   atomic.Int32
	// maxFileNum is at least the largest file number of any table.
	maxFileNum uint64
}

// namespaces is the namespace state of a version. It is immutable once a
// version holds it, and shared by versions until a namespace changes.
type namespaces struct {
	byID    map[base.NamespaceID]string
	byName  map[string]base.NamespaceID
	dropped map[base.NamespaceID]struct{}
	next    base.NamespaceID
}

// clone returns a mutable copy of ns (which may be nil).
func (ns *namespaces) clone() *namespaces {
	c := &namespaces{
		byID:    map[base.NamespaceID]string{},
		byName:  map[string]base.NamespaceID{},
		dropped: map[base.NamespaceID]struct{}{},
		next:    FirstNamespaceID,
	}
	if ns != nil {
		maps.Copy(c.byID, ns.byID)
		maps.Copy(c.byName, ns.byName)
		maps.Copy(c.dropped, ns.dropped)
		c.next = ns.next
	}
	return c
}

// Files returns the tables of a level, in the level's order (see Version),
// or nil for a level out of range. The slice is shared and read-only.
func (v *Version) Files(level int) []*FileMetadata {
	if level < 0 || level >= NumLevels {
		return nil
	}
	return v.levels[level]
}

// NumFiles returns the number of tables of a level.
func (v *Version) NumFiles(level int) int { return len(v.Files(level)) }

// LevelSize returns the total size in bytes of a level's tables.
func (v *Version) LevelSize(level int) uint64 {
	if level < 0 || level >= NumLevels {
		return 0
	}
	return v.sizes[level]
}

// Overlaps returns the tables of a level whose user-key range intersects
// [smallest, largest] (both bounds included); a nil largest means no upper
// bound (an empty but non-nil largest is the empty key). For level 1 and
// deeper, the result is a subslice of Files(level), found by binary search
// without allocating; for level 0 it is a new slice, newest first. Either
// way it is read-only. A reader looking up one key passes it as both bounds:
// below level 0 it gets at most one table.
//
// For level 0 the result is not closed under overlap: a table that overlaps
// a returned one but not [smallest, largest] is not returned.
func (v *Version) Overlaps(level int, smallest, largest []byte) []*FileMetadata {
	files := v.Files(level)
	if largest != nil && bytes.Compare(smallest, largest) > 0 {
		return nil
	}
	if level == 0 {
		var out []*FileMetadata
		for _, f := range files {
			if overlaps(f, smallest, largest) {
				out = append(out, f)
			}
		}
		return out
	}
	i := sort.Search(len(files), func(i int) bool {
		return bytes.Compare(files[i].Largest.UserKey, smallest) >= 0
	})
	j := i
	for j < len(files) && (largest == nil || bytes.Compare(files[j].Smallest.UserKey, largest) <= 0) {
		j++
	}
	return files[i:j:j]
}

// overlaps tells whether f's user-key range intersects [smallest, largest]
// (nil largest: unbounded).
func overlaps(f *FileMetadata, smallest, largest []byte) bool {
	if bytes.Compare(f.Largest.UserKey, smallest) < 0 {
		return false
	}
	return largest == nil || bytes.Compare(f.Smallest.UserKey, largest) <= 0
}

// NamespaceID returns the id of the live namespace called name.
func (v *Version) NamespaceID(name string) (base.NamespaceID, bool) {
	if v.ns == nil {
		return 0, false
	}
	id, ok := v.ns.byName[name]
	return id, ok
}

// NamespaceName returns the name of the live namespace id.
func (v *Version) NamespaceName(id base.NamespaceID) (string, bool) {
	if v.ns == nil {
		return "", false
	}
	name, ok := v.ns.byID[id]
	return name, ok
}

// IsDropped tells whether namespace id has been dropped: its keys are dead,
// and compaction may discard them.
func (v *Version) IsDropped(id base.NamespaceID) bool {
	if v.ns == nil {
		return false
	}
	_, ok := v.ns.dropped[id]
	return ok
}

// Namespaces returns the live namespaces by increasing id, in a new slice.
func (v *Version) Namespaces() []Namespace {
	if v.ns == nil {
		return nil
	}
	out := make([]Namespace, 0, len(v.ns.byID))
	for _, id := range slices.Sorted(maps.Keys(v.ns.byID)) {
		out = append(out, Namespace{ID: id, Name: v.ns.byID[id]})
	}
	return out
}

// DroppedNamespaces returns the dropped namespace ids, increasing, in a new
// slice.
func (v *Version) DroppedNamespaces() []base.NamespaceID {
	if v.ns == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(v.ns.dropped))
}

// NextNamespaceID returns the smallest id a new namespace may take. Ids are
// never reused, so the keys of a dropped namespace that compaction has not
// reclaimed yet never reappear in a new one.
func (v *Version) NextNamespaceID() base.NamespaceID {
	if v.ns == nil {
		return FirstNamespaceID
	}
	return v.ns.next
}

// Ref adds a reference to v. It is safe for concurrent use. Calling it on
// a version whose references are all gone is a programming error and
// panics.
func (v *Version) Ref() {
	if v.refs.Add(1) <= 1 {
		panic("manifest: Ref of a released version")
	}
}

// Unref drops a reference to v. When it drops the last one, it releases v's
// hold on its tables and returns those that no other version holds: the
// engine may delete their files once the manifest no longer names them (see
// the package doc). Otherwise it returns nil. It is safe for concurrent
// use; releasing more references than were taken panics.
func (v *Version) Unref() []*FileMetadata {
	n := v.refs.Add(-1)
	if n > 0 {
		return nil
	}
	if n < 0 {
		panic("manifest: Unref of a released version")
	}
	var obsolete []*FileMetadata
	for _, files := range v.levels {
		for _, f := range files {
			if f.refs.Add(-1) == 0 {
				obsolete = append(obsolete, f)
			}
		}
	}
	return obsolete
}

// Refs returns the number of references to v.
func (v *Version) Refs() int32 { return v.refs.Load() }

// String lists the tables of each non-empty level, one per line, and the
// namespaces: for debugging and the CLI.
func (v *Version) String() string {
	var sb strings.Builder
	for level, files := range v.levels {
		if len(files) == 0 {
			continue
		}
		fmt.Fprintf(&sb, "L%d: %d tables, %d bytes\n", level, len(files), v.sizes[level])
		for _, f := range files {
			fmt.Fprintf(&sb, "  %s\n", f)
		}
	}
	for _, ns := range v.Namespaces() {
		fmt.Fprintf(&sb, "namespace %d %q\n", ns.ID, ns.Name)
	}
	if d := v.DroppedNamespaces(); len(d) > 0 {
		fmt.Fprintf(&sb, "dropped namespaces %v\n", d)
	}
	fmt.Fprintf(&sb, "next namespace id %d\n", v.NextNamespaceID())
	return sb.String()
}
