package compress

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// testInputs returns named inputs covering the edge and common cases.
func testInputs(r *rand.Rand) []struct {
	name string
	data []byte
} {
	repeated := bytes.Repeat([]byte("strata/key/0001 value value value "), 100000) // ~3.3 MiB
	return []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one-byte", []byte{'x'}},
		{"small", []byte("hello, hello, hello, strata")},
		{"zeros-1k", make([]byte, 1024)},
		{"kv-4k", kvBlock(r, 4096)},
		{"kv-64k", kvBlock(r, 64<<10)},
		{"kv-300k", kvBlock(r, 300<<10)},
		{"repeated-3m", repeated},
		{"random-4k", randomBytes(r, 4096)},
		{"random-300k", randomBytes(r, 300<<10)},
	}
}

func TestRoundTrip(t *testing.T) {
	r := newRand(t)
	for _, in := range testInputs(r) {
		for _, c := range allCodecs {
			t.Run(in.name+"/"+c.String(), func(t *testing.T) {
				enc, err := Encode(c, nil, in.data)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				dec, err := Decode(c, nil, enc, len(in.data))
				if err != nil {
					t.Fatalf("Decode of %d encoded bytes: %v", len(enc), err)
				}
				if !bytes.Equal(dec, in.data) {
					t.Fatalf("round trip of %d bytes gave %d different bytes", len(in.data), len(dec))
				}
				if len(in.data) > 0 && &dec[0] == &enc[0] {
					t.Fatalf("decoded block aliases its source")
				}
				t.Logf("%d -> %d bytes", len(in.data), len(enc))
			})
		}
	}
}

// TestAppend checks that Encode and Decode append to dst, keep its prefix
// and use its spare capacity instead of allocating.
func TestAppend(t *testing.T) {
	data := kvBlock(newRand(t), 4096)
	prefix := []byte("prefix")
	for _, c := range allCodecs {
		buf := make([]byte, len(prefix), 3*len(data))
		copy(buf, prefix)
		enc, err := Encode(c, buf, data)
		if err != nil {
			t.Fatalf("%s: Encode: %v", c, err)
		}
		if &enc[0] != &buf[0] || !bytes.Equal(enc[:len(prefix)], prefix) {
			t.Fatalf("%s: Encode did not append in place", c)
		}
		buf2 := make([]byte, len(prefix), len(prefix)+len(data))
		copy(buf2, prefix)
		dec, err := Decode(c, buf2, enc[len(prefix):], len(data))
		if err != nil {
			t.Fatalf("%s: Decode: %v", c, err)
		}
		if &dec[0] != &buf2[0] || !bytes.Equal(dec[:len(prefix)], prefix) || !bytes.Equal(dec[len(prefix):], data) {
			t.Fatalf("%s: Decode did not append in place", c)
		}
		// Without spare capacity, the prefix is carried over.
		dec, err = Decode(c, prefix, enc[len(prefix):], len(data))
		if err != nil || !bytes.Equal(dec[:len(prefix)], prefix) || !bytes.Equal(dec[len(prefix):], data) {
			t.Fatalf("%s: Decode into a full dst: %v", c, err)
		}
	}
}

// TestNoAllocs checks that, given the capacity, Encode and Decode of a
// 4 KiB block allocate nothing.
func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool allocate")
	}
	data := kvBlock(newRand(t), 4096)
	for _, c := range allCodecs {
		enc, _ := Encode(c, nil, data)
		ebuf := make([]byte, 0, 2*len(data))
		dbuf := make([]byte, 0, len(data))
		if n := testing.AllocsPerRun(50, func() { _, _ = Encode(c, ebuf, data) }); n != 0 {
			t.Errorf("%s: Encode allocates %v times per call", c, n)
		}
		if n := testing.AllocsPerRun(50, func() { _, _ = Decode(c, dbuf, enc, len(data)) }); n != 0 {
			t.Errorf("%s: Decode allocates %v times per call", c, n)
		}
	}
}

// wantCorrupt fails t unless err wraps base.ErrCorruption and out is dst.
func wantCorrupt(t *testing.T, what string, dst, out []byte, err error) {
	t.Helper()
	if !errors.Is(err, base.ErrCorruption) {
		t.Errorf("%s: err = %v, want one wrapping ErrCorruption", what, err)
	}
	if len(out) != len(dst) {
		t.Errorf("%s: failed Decode returned %d bytes, want dst's %d", what, len(out), len(dst))
	}
}

func TestDecodeTruncated(t *testing.T) {
	data := kvBlock(newRand(t), 4096)
	dst := []byte("dst")
	for _, c := range []Codec{Snappy, Zstd} {
		enc, _ := Encode(c, nil, data)
		for n := range len(enc) {
			out, err := Decode(c, dst, enc[:n], len(data))
			wantCorrupt(t, c.String()+" truncated", dst, out, err)
		}
	}
}

// TestDecodeDamaged flips bytes at random: Decode must not panic, and must
// either report corruption or return at most maxLen bytes.
func TestDecodeDamaged(t *testing.T) {
	r := newRand(t)
	data := kvBlock(r, 4096)
	for _, c := range allCodecs {
		enc, _ := Encode(c, nil, data)
		bad := make([]byte, len(enc))
		var corrupt int
		for range 2000 {
			copy(bad, enc)
			for range 1 + r.IntN(3) {
				bad[r.IntN(len(bad))] ^= byte(1 + r.IntN(255))
			}
			out, err := Decode(c, nil, bad, len(data))
			switch {
			case err != nil && !errors.Is(err, base.ErrCorruption):
				t.Fatalf("%s: damaged block: %v, want ErrCorruption", c, err)
			case err != nil:
				corrupt++
			case len(out) > len(data):
				t.Fatalf("%s: damaged block decoded to %d bytes, limit %d", c, len(out), len(data))
			}
		}
		t.Logf("%s: %d of 2000 damaged blocks reported as corrupt", c, corrupt)
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Codec
		src  []byte
	}{
		{"snappy empty", Snappy, nil},
		{"snappy unterminated varint", Snappy, []byte{0x80, 0x80}},
		{"snappy 6-byte varint", Snappy, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
		{"snappy short literal", Snappy, []byte{5, 4 << 2, 'a', 'b'}},
		{"snappy long output", Snappy, []byte{1, 1 << 2, 'a', 'b'}},
		{"snappy copy before start", Snappy, []byte{8, 1 << 2, 'a', 'b', 0x01 | 2<<2, 3}},
		// A copy with offset 0 (S2's "repeat") before any copy to repeat.
		{"snappy s2 repeat", Snappy, []byte{8, 1 << 2, 'a', 'b', 0x01 | 2<<2, 0}},
		{"zstd empty", Zstd, nil},
		{"zstd bad magic", Zstd, []byte{0x28, 0xb5, 0x2f, 0xfe, 0x20, 0x00, 0x01, 0x00, 0x00}},
		{"zstd skippable", Zstd, []byte{0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0}},
		// A valid frame (raw block "abc") that omits Frame_Content_Size.
		{"zstd no content size", Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, 0x19, 0x00, 0x00, 'a', 'b', 'c'}},
		// The same frame, single-segment, announcing 4 bytes but holding 3.
		{"zstd short content", Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x04, 0x19, 0x00, 0x00, 'a', 'b', 'c'}},
		{"zstd trailing garbage", Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x03, 0x19, 0x00, 0x00, 'a', 'b', 'c', 'x'}},
		{"unknown codec", Codec(3), []byte("abc")},
		{"unknown codec 255", Codec(255), nil},
	} {
		out, err := Decode(tc.c, nil, tc.src, 1<<20)
		wantCorrupt(t, tc.name, nil, out, err)
	}
	// The well-formed twin of the zstd cases above decodes.
	out, err := Decode(Zstd, nil, []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x03, 0x19, 0x00, 0x00, 'a', 'b', 'c'}, 3)
	if err != nil || string(out) != "abc" {
		t.Fatalf("hand-made zstd frame: %q, %v", out, err)
	}
}

// TestDecodeConcatenatedFrames checks that a zstd block holding a second
// frame after the first cannot decode past the first frame's size.
func TestDecodeConcatenatedFrames(t *testing.T) {
	a, _ := Encode(Zstd, nil, []byte("first frame"))
	ab, _ := Encode(Zstd, a, []byte("second frame"))
	out, err := Decode(Zstd, nil, ab, 1<<20)
	wantCorrupt(t, "two zstd frames", nil, out, err)
}

func TestDecodeOversize(t *testing.T) {
	data := kvBlock(newRand(t), 4096)
	for _, c := range allCodecs {
		enc, _ := Encode(c, nil, data)
		out, err := Decode(c, nil, enc, len(data)-1)
		wantCorrupt(t, c.String()+" maxLen one short", nil, out, err)
		if _, err := Decode(c, nil, enc, len(data)); err != nil {
			t.Errorf("%s: exact maxLen: %v", c, err)
		}
		if _, err := Decode(c, nil, enc, 0); !errors.Is(err, base.ErrCorruption) {
			t.Errorf("%s: maxLen 0: %v, want ErrCorruption", c, err)
		}
	}
}

// TestDecodeHugeAnnouncedLength checks that a block announcing an absurd
// length is refused before anything near that length is allocated.
func TestDecodeHugeAnnouncedLength(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Codec
		src  []byte
	}{
		{"snappy 4 GiB", Snappy, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x00}},
		{"snappy MaxLen+1", Snappy, []byte{0x81, 0x80, 0x80, 0x80, 0x04, 0x00}},
		{"zstd 2^40", Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0, 1, 0, 0, 0x01, 0, 0}},
		{"zstd MaxLen+1", Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0x01, 0x00, 0x00, 0x40, 0x01, 0, 0}},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		out, err := Decode(tc.c, nil, tc.src, 1<<62)
		runtime.ReadMemStats(&after)
		wantCorrupt(t, tc.name, nil, out, err)
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s: refusing the block allocated %d bytes", tc.name, n)
		}
	}
}

func TestBadArguments(t *testing.T) {
	if _, err := Encode(Codec(9), nil, []byte("x")); err == nil || errors.Is(err, base.ErrCorruption) {
		t.Errorf("Encode with an unknown codec: %v, want a non-corruption error", err)
	}
	if _, err := Decode(None, nil, []byte("x"), -1); err == nil || errors.Is(err, base.ErrCorruption) {
		t.Errorf("Decode with maxLen -1: %v, want a non-corruption error", err)
	}
}

// TestConcurrent runs encodes and decodes of every codec on many goroutines
// at once, sharing the zstd encoder and decoder.
func TestConcurrent(t *testing.T) {
	r := newRand(t)
	blocks := make([][]byte, 16)
	for i := range blocks {
		blocks[i] = kvBlock(r, 1024+r.IntN(8192))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3*len(blocks))
	for i, data := range blocks {
		for _, c := range allCodecs {
			wg.Go(func() {
				var enc, dec []byte
				for range 20 {
					var err error
					if enc, err = Encode(c, enc[:0], data); err != nil {
						errs <- err
						return
					}
					if dec, err = Decode(c, dec[:0], enc, len(data)); err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(dec, data) {
						errs <- errors.New(c.String() + ": concurrent round trip differs, block " + string(rune('a'+i)))
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
