package manifest

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/vfs"
)

// newTestWriter returns a Writer over a fake record writer on a MemFS file.
func newTestWriter(t *testing.T) (*Writer, *fakeWriter) {
	t.Helper()
	f, err := vfs.NewMem().Create("m")
	if err != nil {
		t.Fatal(err)
	}
	rw := newFakeWriter(f, 1).(*fakeWriter)
	return NewWriter(rw, 1), rw
}

func TestWriterPoisoned(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(*fakeWriter)
	}{
		{"append fails", func(rw *fakeWriter) { rw.failAppend = 2 }},
		{"sync fails", func(rw *fakeWriter) { rw.failFlush = 2 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, rw := newTestWriter(t)
			c.set(rw)
			if err := w.Append(&VersionEdit{NextFileNumber: 2}); err != nil {
				t.Fatal(err)
			}
			size := w.Size()
			err := w.Append(&VersionEdit{LastSeqNum: 5})
			if !errors.Is(err, ErrPoisoned) || !errors.Is(err, errFake) {
				t.Fatalf("failed Append: %v, want ErrPoisoned wrapping the failure", err)
			}
			appends, flushes := rw.appends, rw.flushes
			rw.err, rw.failAppend, rw.failFlush = nil, 0, 0 // even a healed record writer
			err = w.Append(&VersionEdit{LastSeqNum: 6})
			if !errors.Is(err, ErrPoisoned) || !errors.Is(err, errFake) {
				t.Fatalf("Append after a failure: %v", err)
			}
			if rw.appends != appends || rw.flushes != flushes {
				t.Fatalf("a poisoned Writer still wrote to its record writer")
			}
			if !errors.Is(w.Err(), errFake) || !w.ShouldRoll(1<<40) || w.Size() != size {
				t.Fatalf("Err %v, ShouldRoll %v, Size %d (was %d)", w.Err(), w.ShouldRoll(1<<40), w.Size(), size)
			}
		})
	}
}

func TestWriterRefusesMalformedEdit(t *testing.T) {
	w, rw := newTestWriter(t)
	for _, e := range []*VersionEdit{
		{NewFiles: []NewFile{{0, nil}}},
		{NewFiles: []NewFile{{NumLevels, meta(1, "a", "b", 1, 1)}}},
		{DeletedFiles: []DeletedFile{{0, 0}}},
		{CreatedNamespaces: []Namespace{{base.DefaultNamespace, "default"}}},
		{LastSeqNum: base.MaxSeqNum + 1},
	} {
		if err := w.Append(e); err == nil || errors.Is(err, ErrPoisoned) {
			t.Errorf("Append(%+v) = %v, want a refusal", e, err)
		}
	}
	if rw.appends != 0 || w.Err() != nil {
		t.Fatalf("refused edits reached the record writer or poisoned the Writer")
	}
	if err := w.Append(&VersionEdit{NextFileNumber: 3}); err != nil {
		t.Fatal(err)
	}
}

func TestWriterClose(t *testing.T) {
	w, rw := newTestWriter(t)
	if err := w.Append(&VersionEdit{NextFileNumber: 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil || !rw.closed {
		t.Fatalf("Close = %v (closed %v)", err, rw.closed)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := w.Append(&VersionEdit{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	if w.FileNum() != 1 || w.Size() == 0 {
		t.Fatalf("FileNum %d, Size %d after Close", w.FileNum(), w.Size())
	}
}

func TestWriterShouldRoll(t *testing.T) {
	w, _ := newTestWriter(t)
	if w.ShouldRoll(100) {
		t.Fatal("an empty Writer asks to roll")
	}
	big := &VersionEdit{}
	for i := range 20 {
		big.NewFiles = append(big.NewFiles, NewFile{0, meta(uint64(i+1), "a", "b", 1, 1)})
	}
	if err := w.Append(big); err != nil {
		t.Fatal(err)
	}
	snap := w.Size()
	if w.ShouldRoll(snap / 2) {
		t.Fatalf("rolls right after a snapshot of %d bytes larger than the limit", snap)
	}
	for w.Size() < 2*snap {
		if w.ShouldRoll(snap / 2) {
			t.Fatalf("rolls at %d bytes, before twice the snapshot (%d)", w.Size(), snap)
		}
		if err := w.Append(&VersionEdit{LastSeqNum: 9}); err != nil {
			t.Fatal(err)
		}
	}
	if !w.ShouldRoll(snap / 2) {
		t.Fatalf("does not roll at %d bytes, past twice the snapshot", w.Size())
	}
	if w.ShouldRoll(1 << 40) {
		t.Fatal("rolls below a large limit")
	}
}

func TestWriterAppendDoesNotAllocate(t *testing.T) {
	w, _ := newTestWriter(t)
	e := &VersionEdit{NextFileNumber: 9, LastSeqNum: 100, NewFiles: []NewFile{{0, meta(4, "a", "b", 1, 1)}}}
	if err := w.Append(e); err != nil {
		t.Fatal(err)
	}
	// The fake record writer allocates as its buffer grows; count only ours.
	enc := e.Encode(nil)
	if n := testing.AllocsPerRun(100, func() { enc = e.Encode(enc[:0]) }); n != 0 {
		t.Fatalf("Encode into a buffer with room allocates %v times", n)
	}
}

func encodeAll(edits ...*VersionEdit) [][]byte {
	var out [][]byte
	for _, e := range edits {
		out = append(out, e.Encode(nil))
	}
	return out
}

func TestReplay(t *testing.T) {
	snap := &VersionEdit{NextFileNumber: 5, NewFiles: []NewFile{{1, meta(2, "a", "c", 1, 4)}}, LastSeqNum: 4}
	flush := &VersionEdit{LogNumber: 6, NextFileNumber: 8, LastSeqNum: 9, NewFiles: []NewFile{{0, meta(7, "b", "z", 5, 9)}}}
	v, s, err := Replay(&sliceReader{recs: encodeAll(snap, flush)})
	if err != nil {
		t.Fatal(err)
	}
	if s != (State{LogNumber: 6, NextFileNumber: 8, LastSeqNum: 9}) || v.NumFiles(0) != 1 || v.NumFiles(1) != 1 || v.Refs() != 1 {
		t.Fatalf("Replay = %v\n%s", s, v)
	}
	readErr := errors.New("disk on fire")
	cases := map[string]struct {
		r       RecordReader
		corrupt bool
	}{
		"no record":       {&sliceReader{}, true},
		"bad record":      {&sliceReader{recs: [][]byte{snap.Encode(nil), {1, 99}}}, true},
		"bad edit":        {&sliceReader{recs: encodeAll(snap, &VersionEdit{DeletedFiles: []DeletedFile{{0, 2}}})}, true},
		"state goes back": {&sliceReader{recs: encodeAll(snap, &VersionEdit{NextFileNumber: 4})}, true},
		"no next file":    {&sliceReader{recs: encodeAll(&VersionEdit{LastSeqNum: 3})}, true},
		"file too new":    {&sliceReader{recs: encodeAll(snap, &VersionEdit{NewFiles: []NewFile{{0, meta(5, "a", "b", 1, 1)}}})}, true},
		"seq above last":  {&sliceReader{recs: encodeAll(snap, &VersionEdit{NewFiles: []NewFile{{0, meta(3, "a", "b", 1, 5)}}})}, true},
		"overlap at end":  {&sliceReader{recs: encodeAll(snap, &VersionEdit{NewFiles: []NewFile{{1, meta(3, "c", "d", 1, 1)}}})}, true},
		"read error":      {&sliceReader{recs: encodeAll(snap), err: readErr}, false},
	}
	for name, c := range cases {
		_, _, err := Replay(c.r)
		if err == nil || errors.Is(err, base.ErrCorruption) != c.corrupt {
			t.Errorf("%s: Replay = %v, want corruption %v", name, err, c.corrupt)
		}
	}
	if _, _, err := Replay(cases["read error"].r); !errors.Is(err, readErr) {
		t.Errorf("read error not wrapped: %v", err)
	}
	if _, _, err := Replay(&sliceReader{recs: [][]byte{snap.Encode(nil), {1, 99}}}); !strings.Contains(err.Error(), "record 1") {
		t.Errorf("error does not name the record: %v", err)
	}
}

// createStore makes a store with manifest 3 holding v and s.
func createStore(t *testing.T, v *Version, s State) (*vfs.MemFS, *Writer) {
	t.Helper()
	fs := newStoreDir(t)
	w, err := Create(fs, "db", 3, newFakeWriter, v, s)
	if err != nil {
		t.Fatal(err)
	}
	return fs, w
}

func TestCreateLoad(t *testing.T) {
	v := mustBuild(t, nil, &VersionEdit{
		NewFiles:          []NewFile{{0, meta(1, "a", "b", 1, 3)}, {2, meta(2, "c", "d", 1, 1)}},
		CreatedNamespaces: []Namespace{{2, "orders"}, {3, "gone"}},
	}, &VersionEdit{DroppedNamespaces: []base.NamespaceID{3}})
	s := State{LogNumber: 2, NextFileNumber: 4, LastSeqNum: 3}
	fs, w := createStore(t, v, s)
	gv, gs, num, err := Load(fs, "db", newFakeReader)
	if err != nil || num != 3 || describe(gv, gs) != describe(v, s) {
		t.Fatalf("Load = %d, %v:\n%s\nwant\n%s", num, err, describe(gv, gs), describe(v, s))
	}
	// Later edits, and a torn record at the end (the manifest's torn tail).
	e := &VersionEdit{NextFileNumber: 6, LastSeqNum: 7, NewFiles: []NewFile{{0, meta(5, "x", "y", 4, 7)}}}
	if err := w.Append(e); err != nil {
		t.Fatal(err)
	}
	name := "db/" + FileName(3)
	data, err := vfs.ReadFile(fs, name)
	if err != nil {
		t.Fatal(err)
	}
	torn := fakeRecords((&VersionEdit{LastSeqNum: 8}).Encode(nil))
	if err := vfs.WriteFile(fs, name, append(data, torn[:len(torn)-1]...)); err != nil {
		t.Fatal(err)
	}
	gv, gs, _, err = Load(fs, "db", newFakeReader)
	if err != nil || gs.LastSeqNum != 7 || gv.NumFiles(0) != 2 {
		t.Fatalf("Load after an edit and a torn tail = %v, %v\n%s", gs, err, gv)
	}
}

func TestCreateChecks(t *testing.T) {
	fs := newStoreDir(t)
	empty := mustBuild(t, nil)
	for _, c := range []struct {
		num uint64
		s   State
	}{
		{0, State{NextFileNumber: 2}},
		{2, State{NextFileNumber: 2}},
		{1, State{NextFileNumber: 2, LogNumber: 3}},
	} {
		if w, err := Create(fs, "db", c.num, newFakeWriter, empty, c.s); err == nil {
			t.Errorf("Create(%d, %v) succeeded", c.num, c.s)
			w.Close()
		}
	}
	if _, err := fs.Stat("db/CURRENT"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused Create made CURRENT: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	fs := newStoreDir(t)
	if _, _, _, err := Load(fs, "db", newFakeReader); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of an empty directory = %v, want ErrNotExist", err)
	}
	// A manifest that names a next file number not above its own.
	writeManifestFile(t, fs, 9, string(fakeRecords((&VersionEdit{NextFileNumber: 9}).Encode(nil))))
	if err := SetCurrent(fs, "db", 9); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := Load(fs, "db", newFakeReader); !errors.Is(err, base.ErrCorruption) {
		t.Fatalf("Load with next file number 9 in manifest 9 = %v", err)
	}
	// Damage before the last record is corruption, with the file named.
	recs := fakeRecords((&VersionEdit{NextFileNumber: 10}).Encode(nil), (&VersionEdit{LastSeqNum: 1}).Encode(nil))
	recs[9] ^= 1
	writeManifestFile(t, fs, 9, string(recs))
	_, _, _, err := Load(fs, "db", newFakeReader)
	if !errors.Is(err, base.ErrCorruption) || !strings.Contains(err.Error(), FileName(9)) {
		t.Fatalf("Load of a damaged manifest = %v", err)
	}
}
