package manifest

import (
	"fmt"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// benchEdit is a flush edit: one new L0 table and the scalars.
func benchEdit() *VersionEdit {
	m := meta(1234, "\x01user-key-000000000123", "\x01user-key-000000009876", 100000, 200000)
	m.Namespaces = []base.NamespaceID{1, 5}
	return &VersionEdit{LogNumber: 1233, NextFileNumber: 1235, LastSeqNum: 200000, NewFiles: []NewFile{{0, m}}}
}

func BenchmarkEncode(b *testing.B) {
	b.ReportAllocs()
	e := benchEdit()
	buf := e.Encode(nil)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = e.Encode(buf[:0])
	}
}

func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	enc := benchEdit().Encode(nil)
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// bigVersion has n tables in each of L1..L6 and 8 in L0.
func bigVersion(b *testing.B, n int) *Version {
	e := &VersionEdit{}
	num := uint64(1)
	for range 8 {
		e.NewFiles = append(e.NewFiles, NewFile{0, meta(num, "a", "z", num, num)})
		num++
	}
	for level := 1; level < NumLevels; level++ {
		for i := range n {
			e.NewFiles = append(e.NewFiles, NewFile{level, meta(num, fmt.Sprintf("k%08d", 2*i), fmt.Sprintf("k%08d", 2*i+1), 1, 1)})
			num++
		}
	}
	return mustBuild(b, nil, e)
}

func BenchmarkOverlapsPoint(b *testing.B) {
	b.ReportAllocs()
	v := bigVersion(b, 10000)
	k := []byte("k00012345")
	for b.Loop() {
		for level := 1; level < NumLevels; level++ {
			v.Overlaps(level, k, k)
		}
	}
}

// BenchmarkApplyFlush is the engine's cost per flush: one edit applied to a
// version of 60,000 tables, built, and the old version released.
func BenchmarkApplyFlush(b *testing.B) {
	b.ReportAllocs()
	v := bigVersion(b, 10000)
	num := uint64(1 << 20)
	for b.Loop() {
		bld := NewBuilder(v)
		if err := bld.Apply(&VersionEdit{NewFiles: []NewFile{{0, meta(num, "a", "b", num, num)}}}); err != nil {
			b.Fatal(err)
		}
		nv, err := bld.Build()
		if err != nil {
			b.Fatal(err)
		}
		v.Unref()
		v = nv
		num++
	}
}

// BenchmarkReplay replays a manifest of one 60,000-table snapshot and 1,000
// flush edits.
func BenchmarkReplay(b *testing.B) {
	b.ReportAllocs()
	v := bigVersion(b, 10000)
	recs := [][]byte{SnapshotEdit(v, State{NextFileNumber: 1 << 20, LastSeqNum: 1 << 30}).Encode(nil)}
	for i := range 1000 {
		num := uint64(1<<20 + i)
		recs = append(recs, (&VersionEdit{NextFileNumber: num + 1, NewFiles: []NewFile{{0, meta(num, "a", "b", 5, 5)}}}).Encode(nil))
	}
	for b.Loop() {
		if _, _, err := Replay(&sliceReader{recs: recs}); err != nil {
			b.Fatal(err)
		}
	}
}
