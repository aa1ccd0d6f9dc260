package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/stratadb/strata/internal/testseed"
	"io"
	"math/rand"
	"sync"
	"testing"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/vfs"
)

// newRand returns the RNG of a randomized test and logs its seed.
func newRand(t testing.TB) *rand.Rand {
	return rand.New(rand.NewSource(int64(testseed.Seed(t))))
}

// memFile is an in-memory vfs.File that counts calls and can fail or block
// on demand. Its durable length is the length at the last Sync.
type memFile struct {
	mu      sync.Mutex
	data    []byte
	rpos    int
	durable int // len(data) at the last successful Sync
	writes  int
	syncs   int
	closes  int

	writeErr   error  // returned by Write (which writes nothing)
	shortWrite bool   // Write writes half and returns a nil error
	syncErr    error  // returned by Sync
	closeErr   error  // returned by Close
	onWrite    func() // called at the start of Write, without the lock
	onSync     func() // called at the start of Sync, without the lock
}

var _ vfs.File = (*memFile)(nil)

func (f *memFile) Write(p []byte) (int, error) {
	if f.onWrite != nil {
		f.onWrite()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if f.closes > 0 {
		return 0, errors.New("memFile: write after close")
	}
	if f.writeErr != nil {
		return 0, f.writeErr
	}
	if f.shortWrite {
		p = p[:len(p)/2]
	}
	f.data = append(f.data, p...)
	return len(p), nil
}

func (f *memFile) Sync() error {
	if f.onSync != nil {
		f.onSync()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	if f.closes > 0 {
		return errors.New("memFile: sync after close")
	}
	if f.syncErr != nil {
		return f.syncErr
	}
	f.durable = len(f.data)
	return nil
}

func (f *memFile) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rpos >= len(f.data) {
		return 0, io.EOF
	}
	n := copy(p, f.data[f.rpos:])
	f.rpos += n
	return n, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes++
	return f.closeErr
}

func (f *memFile) Truncate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data = f.data[:min(int(size), len(f.data))]
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.data)), nil
}

// counts returns the numbers of Write, Sync and Close calls so far.
func (f *memFile) counts() (writes, syncs, closes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes, f.syncs, f.closes
}

// bytes returns a copy of the file's contents.
func (f *memFile) bytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.data)
}

// durableLen returns the file's length at its last successful Sync.
func (f *memFile) durableLen() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.durable
}

const testLogNum = 0x1_0000_0007 // high bits are not stored

// writeLog writes recs as log testLogNum to a file of a vfs.MemFS, syncing
// after each record (so each record's chunks record the end of the one
// before as the synced offset), and returns the file's bytes and the end
// offset of each record.
func writeLog(t testing.TB, recs [][]byte) ([]byte, []int64) {
	t.Helper()
	parts := make([][][]byte, len(recs))
	for i, rec := range recs {
		parts[i] = [][]byte{rec}
	}
	return writeLogParts(t, parts)
}

// readFile returns the contents of a file of fs.
func readFile(t testing.TB, fs vfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// readResult is everything a Reader returned.
type readResult struct {
	recs [][]byte // copies
	offs []int64  // Offset after each record
	err  error    // the error that ended the read
}

// readLog reads data as log logNum to its end or first error.
func readLog(r io.Reader, logNum uint64, newest bool) readResult {
	rd := NewReader(r, logNum, "test.log", newest)
	var res readResult
	for {
		rec, err := rd.Next()
		if err != nil {
			res.err = err
			return res
		}
		res.recs = append(res.recs, bytes.Clone(rec))
		res.offs = append(res.offs, rd.Offset())
	}
}

// isCorruption reports whether err wraps base.ErrCorruption.
func isCorruption(err error) bool { return errors.Is(err, base.ErrCorruption) }

// randRecords returns n records of the given sizes filled with random bytes.
func randRecords(rng *rand.Rand, sizes ...int) [][]byte {
	recs := make([][]byte, len(sizes))
	for i, n := range sizes {
		recs[i] = make([]byte, n)
		rng.Read(recs[i])
	}
	return recs
}

// chunkInfo describes one chunk of a well-formed log.
type chunkInfo struct {
	off int64
	typ byte
	len int
}

// chunksOf walks the chunks of a well-formed log (no checks).
func chunksOf(data []byte) []chunkInfo {
	var cs []chunkInfo
	for off := 0; off < len(data); {
		if bp := off % blockSize; bp > blockSize-headerSize {
			off += blockSize - bp
			continue
		}
		n := int(binary.LittleEndian.Uint16(data[off+4:]))
		cs = append(cs, chunkInfo{int64(off), data[off+6], n})
		off += headerSize + n
	}
	return cs
}

// checkRecords fails the test unless got equals want.
func checkRecords(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d: got %d bytes, want %d bytes (contents differ)",
				i, len(got[i]), len(want[i]))
		}
	}
}

// appendChunkBytes appends one chunk with the given payload to buf, whose
// first byte is at file offset 0.
func appendChunkBytes(buf []byte, typ byte, logNum uint32, synced uint64, payload []byte) []byte {
	src := payloadReader{parts: [][]byte{payload}}
	return appendChunk(buf, 0, typ, logNum, synced, &src, len(payload))
}
