package manifest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// fileNums returns the file numbers of a level.
func fileNums(v *Version, level int) []uint64 {
	var out []uint64
	for _, f := range v.Files(level) {
		out = append(out, f.FileNum)
	}
	return out
}

func TestBuilderRejects(t *testing.T) {
	base1 := mustBuild(t, nil, &VersionEdit{
		NewFiles: []NewFile{
			{0, meta(1, "a", "z", 1, 5)},
			{1, meta(2, "a", "f", 1, 1)},
			{1, meta(3, "m", "p", 1, 1)},
		},
		CreatedNamespaces: []Namespace{{2, "two"}, {3, "three"}},
	})
	bad := meta(9, "z", "a", 1, 1) // smallest above largest
	cases := map[string][]*VersionEdit{
		"delete missing":      {{DeletedFiles: []DeletedFile{{0, 42}}}},
		"delete wrong level":  {{DeletedFiles: []DeletedFile{{2, 2}}}},
		"delete twice":        {{DeletedFiles: []DeletedFile{{1, 2}, {1, 2}}}},
		"delete then again":   {{DeletedFiles: []DeletedFile{{1, 2}}}, {DeletedFiles: []DeletedFile{{1, 2}}}},
		"add existing":        {{NewFiles: []NewFile{{3, meta(1, "x", "y", 1, 1)}}}},
		"add twice":           {{NewFiles: []NewFile{{0, meta(8, "a", "b", 1, 1)}, {0, meta(8, "a", "b", 1, 1)}}}},
		"add overlapping L1":  {{NewFiles: []NewFile{{1, meta(8, "e", "g", 1, 1)}}}},
		"add touching L1":     {{NewFiles: []NewFile{{1, meta(8, "f", "g", 1, 1)}}}},
		"add overlapping L2":  {{NewFiles: []NewFile{{2, meta(8, "a", "c", 1, 1)}, {2, meta(9, "b", "d", 1, 1)}}}},
		"add inverted range":  {{NewFiles: []NewFile{{0, bad}}}},
		"add file 0":          {{NewFiles: []NewFile{{0, meta(0, "a", "b", 1, 1)}}}},
		"add nil meta":        {{NewFiles: []NewFile{{0, nil}}}},
		"add level 7":         {{NewFiles: []NewFile{{7, meta(8, "a", "b", 1, 1)}}}},
		"delete level -1":     {{DeletedFiles: []DeletedFile{{-1, 1}}}},
		"seq range inverted":  {{NewFiles: []NewFile{{0, meta(8, "a", "b", 5, 4)}}}},
		"bad kind":            {{NewFiles: []NewFile{{0, &FileMetadata{FileNum: 8, Smallest: base.InternalKey{Trailer: 7}, Largest: base.InternalKey{Trailer: 7}}}}}},
		"unsorted namespaces": {{NewFiles: []NewFile{{0, &FileMetadata{FileNum: 8, Namespaces: []base.NamespaceID{3, 3}}}}}},
		"back then again": {
			{DeletedFiles: []DeletedFile{{1, 2}}},
			{NewFiles: []NewFile{{1, meta(2, "a", "f", 1, 1)}}},
			{NewFiles: []NewFile{{3, meta(2, "a", "f", 1, 1)}}},
		},
		"moved then again": {
			{DeletedFiles: []DeletedFile{{1, 2}}, NewFiles: []NewFile{{4, meta(2, "a", "f", 1, 1)}}},
			{NewFiles: []NewFile{{5, meta(2, "a", "f", 1, 1)}}},
		},
		"move other metadata":  {{DeletedFiles: []DeletedFile{{1, 2}}, NewFiles: []NewFile{{2, meta(2, "a", "g", 1, 1)}}}},
		"create reserved id":   {{CreatedNamespaces: []Namespace{{1, "default"}}}},
		"create old id":        {{CreatedNamespaces: []Namespace{{3, "again"}}}},
		"create taken name":    {{CreatedNamespaces: []Namespace{{4, "two"}}}},
		"create ids unordered": {{CreatedNamespaces: []Namespace{{6, "six"}, {5, "five"}}}},
		"next ns goes back":    {{NextNamespaceID: 3}},
		"drop engine ns":       {{DroppedNamespaces: []base.NamespaceID{0}}},
		"drop default ns":      {{DroppedNamespaces: []base.NamespaceID{1}}},
		"drop unknown ns":      {{DroppedNamespaces: []base.NamespaceID{4}}},
		"drop twice":           {{DroppedNamespaces: []base.NamespaceID{2, 2}}},
		"drop in later edit":   {{DroppedNamespaces: []base.NamespaceID{2}}, {DroppedNamespaces: []base.NamespaceID{2}}},
		"create id too big":    {{CreatedNamespaces: []Namespace{{base.MaxNamespaceID + 1, "x"}}}},
	}
	for name, edits := range cases {
		t.Run(name, func(t *testing.T) {
			b := NewBuilder(base1)
			var err error
			for _, e := range edits {
				if err = b.Apply(e); err != nil {
					break
				}
			}
			var v *Version
			if err == nil {
				v, err = b.Build()
			}
			if err == nil {
				t.Fatalf("accepted; built\n%s", v)
			}
			if !errors.Is(err, base.ErrCorruption) {
				t.Fatalf("%v does not wrap ErrCorruption", err)
			}
			// The Builder is spoiled, and the base untouched.
			if _, err2 := b.Build(); err2 == nil {
				t.Fatalf("Build after a failure succeeded")
			}
		})
	}
	if got := fileNums(base1, 1); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("base changed: L1 = %v", got)
	}
}

func TestBuilderLevelOrder(t *testing.T) {
	v := mustBuild(t, nil, &VersionEdit{NewFiles: []NewFile{
		{0, meta(5, "a", "b", 1, 10)},
		{0, meta(6, "a", "b", 11, 20)},
		{0, meta(4, "c", "d", 11, 20)}, // same seqs as 6: file number decides
		{0, meta(7, "a", "b", 15, 20)}, // same largest, larger smallest: newer
		{1, meta(9, "q", "r", 1, 1)},
		{1, meta(8, "a", "b", 1, 1)},
		{1, meta(10, "c", "p", 1, 1)},
	}})
	if got := fileNums(v, 0); !slices.Equal(got, []uint64{7, 6, 4, 5}) {
		t.Errorf("L0 = %v, want newest first [7 6 4 5]", got)
	}
	if got := fileNums(v, 1); !slices.Equal(got, []uint64{8, 10, 9}) {
		t.Errorf("L1 = %v, want by smallest key [8 10 9]", got)
	}
	if got, want := v.LevelSize(1), uint64(100*(8+10+9)); got != want {
		t.Errorf("LevelSize(1) = %d, want %d", got, want)
	}
	if v.NumFiles(0) != 4 || v.NumFiles(2) != 0 || v.Files(-1) != nil || v.Files(NumLevels) != nil || v.LevelSize(9) != 0 {
		t.Errorf("bad NumFiles/Files/LevelSize on edge levels")
	}
}

func TestBuilderMoveKeepsMetadata(t *testing.T) {
	orig := meta(3, "a", "c", 1, 2)
	v1 := mustBuild(t, nil, &VersionEdit{NewFiles: []NewFile{{1, orig}}})
	cp := meta(3, "a", "c", 1, 2) // equal, but another pointer
	v2 := mustBuild(t, v1, &VersionEdit{DeletedFiles: []DeletedFile{{1, 3}}, NewFiles: []NewFile{{2, cp}}})
	if v2.NumFiles(1) != 0 || v2.Files(2)[0] != orig {
		t.Fatalf("moved table lost its *FileMetadata:\n%s", v2)
	}
	if orig.Refs() != 2 {
		t.Fatalf("refs = %d, want 2 (v1 and v2)", orig.Refs())
	}
	if obs := v1.Unref(); len(obs) != 0 {
		t.Fatalf("Unref of v1 made %v obsolete, but v2 holds it", obs)
	}
	// Delete and add back at the same level, across two edits of one builder.
	v3 := mustBuild(t, v2, &VersionEdit{DeletedFiles: []DeletedFile{{2, 3}}}, &VersionEdit{NewFiles: []NewFile{{2, cp}}})
	if v3.Files(2)[0] != orig || !slices.Equal(fileNums(v3, 2), []uint64{3}) {
		t.Fatalf("table deleted and added back:\n%s", v3)
	}
	// Add then delete within one builder: it never appears.
	v4 := mustBuild(t, v3, &VersionEdit{NewFiles: []NewFile{{4, meta(9, "x", "y", 3, 3)}}}, &VersionEdit{DeletedFiles: []DeletedFile{{4, 9}}})
	if v4.NumFiles(4) != 0 {
		t.Fatalf("added then deleted table is in the version:\n%s", v4)
	}
}

func TestVersionRefs(t *testing.T) {
	a, b, c := meta(1, "a", "b", 1, 1), meta(2, "c", "d", 2, 2), meta(3, "e", "f", 3, 3)
	v1 := mustBuild(t, nil, &VersionEdit{NewFiles: []NewFile{{0, a}, {0, b}}})
	v2 := mustBuild(t, v1, &VersionEdit{DeletedFiles: []DeletedFile{{0, 1}}, NewFiles: []NewFile{{1, c}}})
	if v1.Refs() != 1 || a.Refs() != 1 || b.Refs() != 2 || c.Refs() != 1 {
		t.Fatalf("refs: v1 %d a %d b %d c %d", v1.Refs(), a.Refs(), b.Refs(), c.Refs())
	}
	v1.Ref() // an iterator on v1
	if obs := v1.Unref(); obs != nil {
		t.Fatalf("Unref with a reference left returned %v", obs)
	}
	if obs := v1.Unref(); len(obs) != 1 || obs[0] != a {
		t.Fatalf("last Unref of v1 returned %v, want [a]", obs)
	}
	obs := v2.Unref()
	slices.SortFunc(obs, func(x, y *FileMetadata) int { return int(x.FileNum) - int(y.FileNum) })
	if len(obs) != 2 || obs[0] != b || obs[1] != c {
		t.Fatalf("last Unref of v2 returned %v, want [b c]", obs)
	}
	mustPanic(t, "Unref of a released version", func() { v2.Unref() })
	mustPanic(t, "Ref of a released version", func() { v1.Ref() })
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

func TestBuilderNamespaces(t *testing.T) {
	v0 := mustBuild(t, nil)
	if v0.NextNamespaceID() != FirstNamespaceID || v0.Namespaces() != nil || v0.DroppedNamespaces() != nil || v0.IsDropped(2) {
		t.Fatalf("empty version has namespaces:\n%s", v0)
	}
	if _, ok := v0.NamespaceID("x"); ok {
		t.Fatal("empty version names a namespace")
	}
	v1 := mustBuild(t, v0, &VersionEdit{CreatedNamespaces: []Namespace{{2, "a"}, {5, "b"}}})
	v2 := mustBuild(t, v1, &VersionEdit{DroppedNamespaces: []base.NamespaceID{2}},
		&VersionEdit{CreatedNamespaces: []Namespace{{6, "a"}}}) // the name is free again, the id is not
	if id, ok := v2.NamespaceID("a"); !ok || id != 6 {
		t.Errorf("NamespaceID(a) = %d, %v; want 6", id, ok)
	}
	if name, ok := v2.NamespaceName(5); !ok || name != "b" {
		t.Errorf("NamespaceName(5) = %q, %v", name, ok)
	}
	if _, ok := v2.NamespaceName(2); ok || !v2.IsDropped(2) || v2.IsDropped(5) {
		t.Errorf("dropped namespace 2 still live or not dropped:\n%s", v2)
	}
	if got := v2.NextNamespaceID(); got != 7 {
		t.Errorf("NextNamespaceID = %d, want 7", got)
	}
	if got := v2.Namespaces(); !slices.Equal(got, []Namespace{{5, "b"}, {6, "a"}}) {
		t.Errorf("Namespaces = %v", got)
	}
	// The earlier versions did not change.
	if id, ok := v1.NamespaceID("a"); !ok || id != 2 || v1.IsDropped(2) || v1.NextNamespaceID() != 6 {
		t.Errorf("v1 changed:\n%s", v1)
	}
	// A snapshot rebuilds it all, dropped ids and next id included.
	snap := SnapshotEdit(v2, State{NextFileNumber: 1})
	enc := snap.Encode(nil)
	dec, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if v3 := mustBuild(t, nil, &dec); v3.String() != v2.String() {
		t.Fatalf("snapshot rebuilt\n%s\nwant\n%s", v3, v2)
	}
}

func TestBuilderBuildTwice(t *testing.T) {
	b := NewBuilder(nil)
	if err := b.Apply(&VersionEdit{CreatedNamespaces: []Namespace{{2, "a"}}}); err != nil {
		t.Fatal(err)
	}
	v1, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(&VersionEdit{DroppedNamespaces: []base.NamespaceID{2}}); err != nil {
		t.Fatal(err)
	}
	v2, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if v1.IsDropped(2) || !v2.IsDropped(2) {
		t.Fatalf("a later edit of the builder changed the version it built before")
	}
}

func TestStateApply(t *testing.T) {
	s, err := State{}.Apply(&VersionEdit{LogNumber: 4, NextFileNumber: 9, LastSeqNum: 100})
	if err != nil || s != (State{4, 9, 100}) {
		t.Fatalf("Apply = %v, %v", s, err)
	}
	if s2, err := s.Apply(&VersionEdit{}); err != nil || s2 != s {
		t.Fatalf("empty edit: %v, %v", s2, err)
	}
	for _, e := range []*VersionEdit{{LogNumber: 3}, {NextFileNumber: 8}, {LastSeqNum: 99}} {
		if s2, err := s.Apply(e); !errors.Is(err, base.ErrCorruption) || s2 != s {
			t.Errorf("Apply(%+v) = %v, %v; want corruption and no change", e, s2, err)
		}
	}
}

func TestValidate(t *testing.T) {
	v := mustBuild(t, nil, &VersionEdit{NewFiles: []NewFile{{1, meta(5, "a", "b", 1, 50)}}})
	ok := State{LogNumber: 6, NextFileNumber: 7, LastSeqNum: 50}
	if err := Validate(v, ok); err != nil {
		t.Fatal(err)
	}
	for _, s := range []State{
		{LogNumber: 6, NextFileNumber: 0, LastSeqNum: 50},
		{LogNumber: 6, NextFileNumber: 5, LastSeqNum: 50},
		{LogNumber: 8, NextFileNumber: 7, LastSeqNum: 50},
		{LogNumber: 6, NextFileNumber: 7, LastSeqNum: 49},
	} {
		if err := Validate(v, s); !errors.Is(err, base.ErrCorruption) {
			t.Errorf("Validate(%v) = %v, want corruption", s, err)
		}
	}
}

// TestBuilderModel applies random sequences of edits, valid or not, over
// a few file numbers and levels, to a Builder and to a naive model (a map
// from file number to level and metadata), and checks that both accept
// the same sequences and hold the same tables, the base's *FileMetadata
// kept for tables it held.
func TestBuilderModel(t *testing.T) {
	rng := newRand(t)
	// Table n spans keys [10n, 10n+9]; variant metadata has another size.
	metaOf := func(num uint64, variant bool) *FileMetadata {
		m := meta(num, key(int(10*num)), key(int(10*num+9)), 1, 1)
		if variant {
			m.Size++
		}
		return m
	}
	type at struct {
		level int
		meta  *FileMetadata
	}
	cur := mustBuild(t, nil)
	accepted := 0
	for round := range 5000 {
		model := map[uint64]at{}
		for level := range NumLevels {
			for _, f := range cur.Files(level) {
				model[f.FileNum] = at{level, f}
			}
		}
		removed := map[uint64]*FileMetadata{}
		b := NewBuilder(cur)
		ok := true
		var edits []*VersionEdit
		for range 1 + rng.IntN(3) {
			e := &VersionEdit{}
			for range rng.IntN(3) {
				d := DeletedFile{rng.IntN(3), 1 + rng.Uint64N(8)}
				if a, found := model[d.FileNum]; found && rng.IntN(4) > 0 {
					d.Level = a.level // mostly valid deletions
				}
				e.DeletedFiles = append(e.DeletedFiles, d)
			}
			for range rng.IntN(3) {
				e.NewFiles = append(e.NewFiles, NewFile{rng.IntN(3), metaOf(1+rng.Uint64N(8), rng.IntN(8) == 0)})
			}
			edits = append(edits, e)
			for _, d := range e.DeletedFiles {
				if a, found := model[d.FileNum]; ok && found && a.level == d.Level {
					delete(model, d.FileNum)
					removed[d.FileNum] = a.meta
				} else {
					ok = false
				}
			}
			for _, f := range e.NewFiles {
				m := f.Meta
				if _, found := model[m.FileNum]; found {
					ok = false
				} else if old, was := removed[m.FileNum]; was {
					if old.Size != m.Size {
						ok = false
					}
					m = old
				}
				model[m.FileNum] = at{f.Level, m}
			}
			if err := b.Apply(e); (err == nil) != ok {
				t.Fatalf("round %d: Apply = %v, model ok %v; edits %s\nbase:\n%s", round, err, ok, fmtEdits(edits), cur)
			}
			if !ok {
				break
			}
		}
		if !ok {
			continue
		}
		// Tables in L1 and L2 overlap when they share a level (fixed ranges).
		nv, err := b.Build()
		if err != nil {
			t.Fatalf("round %d: Build: %v", round, err)
		}
		got := map[uint64]at{}
		for level := range NumLevels {
			for _, f := range nv.Files(level) {
				got[f.FileNum] = at{level, f}
			}
		}
		if len(got) != len(model) {
			t.Fatalf("round %d: version holds %d tables, model %d; edits %s\n%s", round, len(got), len(model), fmtEdits(edits), nv)
		}
		for num, a := range model {
			if g, found := got[num]; !found || g.level != a.level || g.meta != a.meta {
				t.Fatalf("round %d: table %d: version %v, model %v; edits %s", round, num, g, a, fmtEdits(edits))
			}
		}
		accepted++
		cur.Unref()
		cur = nv
	}
	t.Logf("%d of 5000 rounds built a version", accepted)
	if accepted < 400 {
		t.Fatalf("only %d of 5000 rounds built a version", accepted)
	}
}

func fmtEdits(edits []*VersionEdit) string {
	var sb strings.Builder
	for _, e := range edits {
		fmt.Fprintf(&sb, "\n  del %v add", e.DeletedFiles)
		for _, f := range e.NewFiles {
			fmt.Fprintf(&sb, " L%d:%d(size %d)", f.Level, f.Meta.FileNum, f.Meta.Size)
		}
	}
	return sb.String()
}
