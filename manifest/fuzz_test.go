package manifest

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// fuzzBase is the version fuzzed edits apply to: a table in L0 and two in
// L1, namespaces 2 and 3.
func fuzzBase(t *testing.T) *Version {
	return mustBuild(t, nil, &VersionEdit{
		NewFiles: []NewFile{
			{0, meta(1, "a", "z", 1, 5)},
			{1, meta(2, "b", "d", 1, 1)},
			{1, meta(3, "m", "p", 1, 1)},
		},
		CreatedNamespaces: []Namespace{{2, "two"}, {3, "three"}},
	})
}

// FuzzManifestDecode decodes arbitrary bytes as a version edit: Decode
// returns an edit or an error wrapping ErrCorruption, never panics; a
// decoded edit re-encodes to bytes that decode to the same edit; applied
// to a version, it either fails with ErrCorruption or builds a version that
// keeps every level's invariants. The bytes are also replayed as a whole
// manifest log.
func FuzzManifestDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		checkReplay(t, data)
		e, err := Decode(data)
		if err != nil {
			if !errors.Is(err, base.ErrCorruption) {
				t.Fatalf("Decode error %v does not wrap ErrCorruption", err)
			}
			return
		}
		enc := e.Encode(nil)
		e2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded edit does not decode: %v\n%x", err, enc)
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("re-encoded edit differs:\n%+v\n%+v", e, e2)
		}
		if !bytes.Equal(e2.Encode(nil), enc) {
			t.Fatalf("encoding is not stable")
		}
		for _, v := range []*Version{nil, fuzzBase(t)} {
			checkApply(t, v, &e)
		}
	})
}

// checkReplay replays data framed as a fake manifest log.
func checkReplay(t *testing.T, data []byte) {
	v, s, err := Replay(&fakeReader{data: data})
	if err != nil {
		if !errors.Is(err, base.ErrCorruption) {
			t.Fatalf("Replay error %v does not wrap ErrCorruption", err)
		}
		return
	}
	if err := Validate(v, s); err != nil {
		t.Fatalf("Replay returned an invalid version: %v", err)
	}
	checkLevels(t, v)
}

// checkApply applies e to base and checks the version built, if any.
func checkApply(t *testing.T, base_ *Version, e *VersionEdit) {
	b := NewBuilder(base_)
	err := b.Apply(e)
	var v *Version
	if err == nil {
		v, err = b.Build()
	}
	if err != nil {
		if !errors.Is(err, base.ErrCorruption) {
			t.Fatalf("Apply/Build error %v does not wrap ErrCorruption", err)
		}
		return
	}
	checkLevels(t, v)
}

// checkLevels checks, independently of Build, that L0 is newest first and
// that deeper levels are sorted and do not overlap.
func checkLevels(t *testing.T, v *Version) {
	seen := map[uint64]bool{}
	for level := range NumLevels {
		files := v.Files(level)
		for i, f := range files {
			if seen[f.FileNum] {
				t.Fatalf("table %d twice in the version", f.FileNum)
			}
			seen[f.FileNum] = true
			if f.validate() != nil || f.Refs() < 1 {
				t.Fatalf("invalid table %s (refs %d) in L%d", f, f.Refs(), level)
			}
			if i == 0 {
				continue
			}
			p := files[i-1]
			if level == 0 && p.LargestSeq < f.LargestSeq {
				t.Fatalf("L0 not newest first: %s before %s", p, f)
			}
			if level > 0 && bytes.Compare(p.Largest.UserKey, f.Smallest.UserKey) >= 0 {
				t.Fatalf("L%d tables overlap or are unsorted: %s, %s", level, p, f)
			}
		}
	}
}

// FuzzPointer parses arbitrary bytes as a CURRENT file: it returns a
// manifest number or an error wrapping ErrCorruption, and accepts exactly
// the canonical "MANIFEST-%06d\n" of a nonzero number.
func FuzzPointer(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := ParseCurrent(data)
		if err != nil {
			if !errors.Is(err, base.ErrCorruption) {
				t.Fatalf("ParseCurrent error %v does not wrap ErrCorruption", err)
			}
		} else if n == 0 || string(data) != FileName(n)+"\n" {
			t.Fatalf("ParseCurrent(%q) = %d", data, n)
		}
		if m, ok := ParseFileName(string(data)); ok && (m == 0 || FileName(m) != string(data)) {
			t.Fatalf("ParseFileName(%q) = %d", data, m)
		}
	})
}
