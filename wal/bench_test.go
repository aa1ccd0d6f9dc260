package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
)

// nullFile is a vfs.File that discards writes.
type nullFile struct{}

func (nullFile) Write(p []byte) (int, error)             { return len(p), nil }
func (nullFile) Sync() error                             { return nil }
func (nullFile) Read(p []byte) (int, error)              { return 0, io.EOF }
func (nullFile) ReadAt(p []byte, off int64) (int, error) { return 0, io.EOF }
func (nullFile) Close() error                            { return nil }
func (nullFile) Truncate(size int64) error               { return nil }
func (nullFile) Size() (int64, error)                    { return 0, nil }

// osFile adapts *os.File to vfs.File for the benchmarks.
type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// countingFile counts the Write and Sync calls to a vfs.File.
type countingFile struct {
	vfs.File
	writes, syncs atomic.Int64
}

func (f *countingFile) Write(p []byte) (int, error) { f.writes.Add(1); return f.File.Write(p) }
func (f *countingFile) Sync() error                 { f.syncs.Add(1); return f.File.Sync() }

// BenchmarkCommit is one goroutine's Append + Flush(no sync) of a record to a
// file that discards writes: the writer's own cost.
func BenchmarkCommit(b *testing.B) {
	for _, size := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			w := NewWriter(nullFile{}, 1)
			rec := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				end, err := w.Append(rec)
				if err == nil {
					err = w.Flush(end, false)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCommitParallel is concurrent 100-byte commits (b.RunParallel,
// 8 goroutines per CPU): to a discard file, synced or not, and to a real
// file in a temporary directory with fsync. writes/op and syncs/op show how
// many commits share one write and one sync.
func BenchmarkCommitParallel(b *testing.B) {
	b.Run("null/nosync", func(b *testing.B) { benchParallel(b, nullFile{}, false) })
	b.Run("null/sync", func(b *testing.B) { benchParallel(b, nullFile{}, true) })
	b.Run("os/sync", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "000001.log"))
		if err != nil {
			b.Fatal(err)
		}
		benchParallel(b, osFile{f}, true)
	})
}

func benchParallel(b *testing.B, f vfs.File, sync bool) {
	cf := &countingFile{File: f}
	w := NewWriter(cf, 1)
	b.SetParallelism(8)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rec := make([]byte, 100)
		for pb.Next() {
			end, err := w.Append(rec)
			if err == nil {
				err = w.Flush(end, sync)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cf.writes.Load())/float64(b.N), "writes/op")
	b.ReportMetric(float64(cf.syncs.Load())/float64(b.N), "syncs/op")
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRead reads a 4 MiB log of 100-byte or 10 KB records.
func BenchmarkRead(b *testing.B) {
	for _, size := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			recs := make([][]byte, (4<<20)/size)
			for i := range recs {
				recs[i] = make([]byte, size)
			}
			data, _ := writeLog(b, recs)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				rd := NewReader(bytes.NewReader(data), testLogNum, "bench.log", true)
				n := 0
				for {
					if _, err := rd.Next(); err != nil {
						break
					}
					n++
				}
				if n != len(recs) {
					b.Fatalf("read %d records, want %d", n, len(recs))
				}
			}
		})
	}
}

// BenchmarkHostileTail reads, as the newest log, 1 MiB made so that the
// scan after damage pays the most: a bad chunk at offset 0, then headers of
// this log back to back, each with a plausible synced offset above the
// damage and a length reaching the end of its block, all with a wrong
// checksum. Zeros and random bytes cost far less.
func BenchmarkHostileTail(b *testing.B) {
	data := make([]byte, 1<<20)
	for off := 0; off+headerSize <= len(data); off += headerSize {
		room := blockSize - off%blockSize
		if room < headerSize {
			off += room - headerSize
			continue
		}
		h := data[off:]
		binary.LittleEndian.PutUint32(h, 0xdeadbeef)
		binary.LittleEndian.PutUint16(h[4:], uint16(room-headerSize))
		h[6] = fullChunk
		binary.LittleEndian.PutUint32(h[7:], testLogNum&0xffffffff)
		binary.LittleEndian.PutUint64(h[11:], uint64(off))
		binary.LittleEndian.PutUint64(h[19:], uint64(min(off, 1)))
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		res := readLog(bytes.NewReader(data), testLogNum, true)
		if res.err != io.EOF || len(res.recs) != 0 {
			b.Fatalf("%d records, %v", len(res.recs), res.err)
		}
	}
}
