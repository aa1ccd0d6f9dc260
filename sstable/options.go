package sstable

import (
	"fmt"
	"strconv"

	"github.com/stratadb/strata/internal/compress"
)

// Compression chooses the codec of a table's blocks. Its zero value is the
// default, Snappy. It is an option only: tables record each block's
// compress.Codec, never a Compression.
type Compression uint8

const (
	// DefaultCompression is Snappy.
	DefaultCompression Compression = iota
	// NoCompression stores blocks as they are.
	NoCompression
	// SnappyCompression compresses blocks with Snappy.
	SnappyCompression
	// ZstdCompression compresses blocks with Zstandard.
	ZstdCompression
)

// codec returns the block codec of c (Snappy for unknown values, which
// withDefaults rejects).
func (c Compression) codec() compress.Codec {
	switch c {
	case NoCompression:
		return compress.None
	case ZstdCompression:
		return compress.Zstd
	}
	return compress.Snappy
}

// String returns "default", the codec's name, or "Compression(N)".
func (c Compression) String() string {
	switch c {
	case DefaultCompression:
		return "default"
	case NoCompression, SnappyCompression, ZstdCompression:
		return c.codec().String()
	}
	return "Compression(" + strconv.Itoa(int(c)) + ")"
}

// WriterOptions configure a Writer. The zero value of each field means its
// default.
type WriterOptions struct {
	// BlockSize is the raw size (before compression) at which a data block
	// is closed. It must not exceed 64 MiB. The default value is 4096.
	BlockSize int
	// BlockRestartInterval is the number of entries between restart points
	// of a data block. The default value is 16 (RestartInterval).
	BlockRestartInterval int
	// Compression is the codec of the blocks. A block that does not shrink
	// by at least 1/8 is stored uncompressed. The default value is
	// DefaultCompression (Snappy).
	Compression Compression
	// FilterBitsPerKey sizes the Bloom filter of the table's user keys; a
	// negative value writes no filter. The default value is 10 (about 1%
	// false positives).
	FilterBitsPerKey int
}

// The bounds of WriterOptions.BlockSize and FilterBitsPerKey.
const (
	MaxBlockSize        = 64 << 20
	MaxFilterBitsPerKey = 1000
)

// withDefaults returns o with its zero fields set to their defaults, or an
// error if a field is invalid.
func (o WriterOptions) withDefaults() (WriterOptions, error) {
	if o.BlockSize == 0 {
		o.BlockSize = 4096
	}
	if o.BlockRestartInterval == 0 {
		o.BlockRestartInterval = RestartInterval
	}
	if o.FilterBitsPerKey == 0 {
		o.FilterBitsPerKey = 10
	}
	switch {
	case o.BlockSize < 0 || o.BlockSize > MaxBlockSize:
		return o, fmt.Errorf("sstable: BlockSize %d is outside 1..%d", o.BlockSize, MaxBlockSize)
	case o.BlockRestartInterval < 0:
		return o, fmt.Errorf("sstable: negative BlockRestartInterval %d", o.BlockRestartInterval)
	case o.Compression > ZstdCompression:
		return o, fmt.Errorf("sstable: unknown %s", o.Compression)
	case o.FilterBitsPerKey > MaxFilterBitsPerKey:
		return o, fmt.Errorf("sstable: FilterBitsPerKey %d is above %d", o.FilterBitsPerKey, MaxFilterBitsPerKey)
	}
	return o, nil
}

// ReaderOptions configure Open.
type ReaderOptions struct {
	// Cache holds the table's decoded data blocks, shared with other
	// tables. Nil means no caching: every block read goes to the file. The
	// default value is nil.
	Cache *Cache
	// CacheID tells apart stores that share one Cache (file numbers are
	// only unique within a store): take one from Cache.NewID per store. The
	// default value is 0.
	CacheID uint64
	// FileName names the table in errors. The default value is
	// "table <file number>".
	FileName string
	// Stats receives the reader's counters; several readers may share one
	// Stats. Nil means the reader keeps its own (see Reader.Stats). The
	// default value is nil.
	Stats *Stats
}

// Validate reports an invalid field of o, as NewWriter would.
func (o WriterOptions) Validate() error {
	_, err := o.withDefaults()
	return err
}
