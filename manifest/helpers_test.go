package manifest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/testseed"
	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/internal/vfs/errorfs"
)

// newRand returns the RNG of a randomized test, logging its seed.
func newRand(t testing.TB) *rand.Rand {
	s := testseed.Seed(t)
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}

// fakeLog is a stand-in for the WAL's record framing (tests must not import
// wal): each record is [length u32 LE][CRC32C u32 LE][payload]. A frame
// that is cut short or fails its checksum at the end reads as the end of
// the log, as the newest WAL's torn tail does; anything else is corruption.
var fakeCRC = crc32.MakeTable(crc32.Castagnoli)

// fakeWriter is a RecordWriter over a vfs.File. Append only buffers; Flush
// writes and syncs. failAppend/failFlush make the n-th call (1-based) fail.
type fakeWriter struct {
	f          vfs.File
	pending    []byte
	off        int64
	err        error
	appends    int
	flushes    int
	failAppend int
	failFlush  int
	closed     bool
}

var errFake = errors.New("fake record writer failure")

func newFakeWriter(f vfs.File, _ uint64) RecordWriter { return &fakeWriter{f: f} }

func (w *fakeWriter) Append(rec []byte) (int64, error) {
	w.appends++
	if w.err != nil {
		return 0, w.err
	}
	if w.appends == w.failAppend {
		w.err = errFake
		return 0, w.err
	}
	w.pending = binary.LittleEndian.AppendUint32(w.pending, uint32(len(rec)))
	w.pending = binary.LittleEndian.AppendUint32(w.pending, crc32.Checksum(rec, fakeCRC))
	w.pending = append(w.pending, rec...)
	return w.off + int64(len(w.pending)), nil
}

func (w *fakeWriter) Flush(end int64, sync bool) error {
	w.flushes++
	if w.err != nil {
		return w.err
	}
	if w.flushes == w.failFlush {
		w.err = errFake
		return w.err
	}
	if len(w.pending) > 0 {
		if _, err := w.f.Write(w.pending); err != nil {
			w.err = err
			return err
		}
		w.off += int64(len(w.pending))
		w.pending = w.pending[:0]
	}
	if sync {
		if err := w.f.Sync(); err != nil {
			w.err = err
			return err
		}
	}
	return nil
}

func (w *fakeWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.Flush(w.off+int64(len(w.pending)), true)
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// fakeReader reads what fakeWriter wrote. A frame cut short, an empty
// frame, or a checksum mismatch in the last frame is a torn tail (io.EOF);
// a checksum mismatch before the last frame is corruption, unless the
// reader is lenient (then every damage ends the log: only for crash tests,
// which check that no synced record was lost).
type fakeReader struct {
	data    []byte
	off     int
	err     error
	lenient bool
}

func newFakeReader(f vfs.File, _ uint64, name string) RecordReader {
	data, err := io.ReadAll(f)
	if err != nil {
		return &fakeReader{err: fmt.Errorf("read %s: %w", name, err)}
	}
	return &fakeReader{data: data}
}

func newLenientReader(f vfs.File, n uint64, name string) RecordReader {
	r := newFakeReader(f, n, name).(*fakeReader)
	r.lenient = true
	return r
}

// fakeRecords frames recs as fakeWriter does.
func fakeRecords(recs ...[]byte) []byte {
	var out []byte
	for _, r := range recs {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(r)))
		out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(r, fakeCRC))
		out = append(out, r...)
	}
	return out
}

func (r *fakeReader) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	rest := r.data[r.off:]
	if len(rest) < 8 {
		return nil, io.EOF // clean end or torn header
	}
	n := int(binary.LittleEndian.Uint32(rest))
	if n == 0 || n > len(rest)-8 {
		return nil, io.EOF // torn or zeroed frame
	}
	rec := rest[8 : 8+n]
	if crc32.Checksum(rec, fakeCRC) != binary.LittleEndian.Uint32(rest[4:]) {
		if r.lenient || 8+n == len(rest) {
			return nil, io.EOF // damaged last record: torn tail
		}
		r.err = base.CorruptionErrorf("fake log: checksum mismatch at offset %d", r.off)
		return nil, r.err
	}
	r.off += 8 + n
	return rec, nil
}

// sliceReader is a RecordReader over records in memory.
type sliceReader struct {
	recs [][]byte
	err  error // returned after the records (io.EOF if nil)
}

func (r *sliceReader) Next() ([]byte, error) {
	if len(r.recs) == 0 {
		if r.err != nil {
			return nil, r.err
		}
		return nil, io.EOF
	}
	rec := r.recs[0]
	r.recs = r.recs[1:]
	return rec, nil
}

// ikey makes an internal key.
func ikey(user string, seq base.SeqNum, kind base.Kind) base.InternalKey {
	return base.InternalKey{UserKey: []byte(user), Trailer: base.MakeTrailer(seq, kind)}
}

// meta makes a table's metadata spanning user keys [a, b].
func meta(num uint64, a, b string, seqLo, seqHi base.SeqNum) *FileMetadata {
	return &FileMetadata{
		FileNum:     num,
		Size:        100 * num,
		Smallest:    ikey(a, seqHi, base.KindSet),
		Largest:     ikey(b, seqLo, base.KindDelete),
		SmallestSeq: seqLo,
		LargestSeq:  seqHi,
	}
}

// describe renders a version and state for comparisons.
func describe(v *Version, s State) string {
	return v.String() + s.String()
}

// mustBuild applies edits to base and builds, failing the test on error.
func mustBuild(t testing.TB, base *Version, edits ...*VersionEdit) *Version {
	t.Helper()
	b := NewBuilder(base)
	for i, e := range edits {
		if err := b.Apply(e); err != nil {
			t.Fatalf("edit %d: %v", i, err)
		}
	}
	v, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// newStoreDir makes directory "db" on a new MemFS, durably.
func newStoreDir(t testing.TB) *vfs.MemFS {
	t.Helper()
	fs := vfs.NewMem()
	if err := fs.MkdirAll("db", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := vfs.SyncDir(fs, "/"); err != nil {
		t.Fatal(err)
	}
	return fs
}

// newPCG returns a generator seeded with seed, for CrashCloneConfig.Rand.
func newPCG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

// hookFS wraps fs so that before is called before each of its operations
// (file operations included), e.g. to take a crash clone at every step.
func hookFS(fs vfs.FS, before func(errorfs.Op)) *errorfs.FS {
	return errorfs.Wrap(fs, errorfs.InjectorFunc(func(op errorfs.Op) error {
		before(op)
		return nil
	}))
}
