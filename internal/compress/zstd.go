package compress

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// zstdWindow is the match window of the shared encoder. Blocks are a few
// KiB, so a window larger than this only costs memory: each of the
// encoder's workers keeps a history buffer of about twice the window once it
// has compressed a block larger than 128 KiB. The window does not reach the
// format: frames are single-segment, and their decoders size the window by
// Frame_Content_Size.
const zstdWindow = 1 << 20

// maxZstdEncoders bounds the shared encoder's workers. Each holds about
// 1.5 MiB of match tables from the encoder's creation on, and compression
// runs on the few background goroutines that write tables, so more workers
// would cost memory on large machines and buy nothing.
const maxZstdEncoders = 8

// zstdEncoder returns the process-wide Zstandard encoder, creating it on
// first use. Its EncodeAll may be called concurrently; it runs up to
// min(GOMAXPROCS at first use, maxZstdEncoders) encodes at once, each on its
// caller's goroutine, and makes later callers wait for a free worker.
var zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithWindowSize(zstdWindow),
		zstd.WithEncoderConcurrency(min(runtime.GOMAXPROCS(0), maxZstdEncoders)),
		zstd.WithEncoderCRC(false),
		zstd.WithSingleSegment(true),
		zstd.WithZeroFrames(true),
	)
	if err != nil {
		return nil, fmt.Errorf("compress: creating the zstd encoder: %w", err)
	}
	return enc, nil
})

// zstdDecoder returns the process-wide Zstandard decoder, creating it on
// first use. Its DecodeAll may be called concurrently, up to GOMAXPROCS (at
// first use) decodes at once. It decodes into the caller's slice and never
// writes past that slice's capacity (WithDecodeAllCapLimit), which is how
// Decode bounds each call; MaxLen bounds it as a whole.
var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(MaxLen),
		zstd.WithDecoderMaxWindow(MaxLen),
		zstd.WithDecodeAllCapLimit(true),
	)
	if err != nil {
		return nil, fmt.Errorf("compress: creating the zstd decoder: %w", err)
	}
	return dec, nil
})
