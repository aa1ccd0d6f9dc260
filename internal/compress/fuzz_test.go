package compress

import (
	"bytes"
	"errors"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/stratadb/strata/internal/base"
)

// fuzzMaxLen bounds the maxLen FuzzDecode uses, so that no input can make it
// allocate more than this.
const fuzzMaxLen = 1 << 20

// FuzzDecode feeds arbitrary bytes to Decode under every codec (and one
// unknown codec). Decode must report damage as ErrCorruption, never panic,
// never return more than maxLen bytes, and whatever it accepts must
// re-encode and decode to itself. For Snappy, every block the strict Snappy
// decoder accepts must decode to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, c := range allCodecs {
		for _, s := range []string{"", "a", "hello, hello, hello", "key/0001value1key/0002value2key/0003value3"} {
			enc, _ := Encode(c, nil, []byte(s))
			f.Add(uint8(c), enc, uint32(len(s)))
		}
	}
	f.Add(uint8(Snappy), []byte{8, 1 << 2, 'a', 'b', 0x01 | 2<<2, 0}, uint32(8))
	f.Add(uint8(Zstd), []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, 0x19, 0x00, 0x00, 'a', 'b', 'c'}, uint32(3))
	f.Add(uint8(3), []byte("abc"), uint32(3))
	f.Fuzz(func(t *testing.T, codec uint8, src []byte, maxLen32 uint32) {
		c := Codec(codec % (numCodecs + 1))
		maxLen := int(maxLen32 % (fuzzMaxLen + 1))
		prefix := []byte("prefix")
		out, err := Decode(c, prefix, src, maxLen)
		if c == Snappy {
			checkStrictSnappy(t, src, maxLen, out[len(prefix):], err)
		}
		if err != nil {
			if !errors.Is(err, base.ErrCorruption) {
				t.Fatalf("Decode(%s): %v, want ErrCorruption", c, err)
			}
			if !bytes.Equal(out, prefix) {
				t.Fatalf("failed Decode(%s) returned %q, want dst", c, out)
			}
			return
		}
		if !bytes.Equal(out[:len(prefix)], prefix) {
			t.Fatalf("Decode(%s) changed dst's prefix to %q", c, out[:len(prefix)])
		}
		dec := out[len(prefix):]
		if len(dec) > maxLen {
			t.Fatalf("Decode(%s) returned %d bytes, limit %d", c, len(dec), maxLen)
		}
		if len(dec) > 0 {
			if _, err := Decode(c, nil, src, len(dec)-1); !errors.Is(err, base.ErrCorruption) {
				t.Fatalf("Decode(%s) with maxLen one short of %d: %v", c, len(dec), err)
			}
		}
		checkRoundTrip(t, c, dec)
	})
}

// checkStrictSnappy checks that a block the strict Snappy decoder accepts
// within maxLen decodes to the same bytes with Decode.
func checkStrictSnappy(t *testing.T, src []byte, maxLen int, dec []byte, err error) {
	n, lerr := snappy.DecodedLen(src)
	if lerr != nil || n > maxLen {
		return
	}
	want, serr := snappy.DecodeStrict(nil, src)
	if serr != nil {
		return
	}
	if err != nil || !bytes.Equal(dec, want) {
		t.Fatalf("strict Snappy decodes %d bytes, Decode gives %d bytes, %v", len(want), len(dec), err)
	}
}

// checkRoundTrip checks that data encodes and decodes back to itself.
func checkRoundTrip(t *testing.T, c Codec, data []byte) {
	if c >= numCodecs {
		t.Fatalf("Decode accepted unknown codec %s", c)
	}
	enc, err := Encode(c, nil, data)
	if err != nil {
		t.Fatalf("Encode(%s) of %d decoded bytes: %v", c, len(data), err)
	}
	again, err := Decode(c, nil, enc, len(data))
	if err != nil || !bytes.Equal(again, data) {
		t.Fatalf("re-encoding %d decoded bytes with %s does not round trip: %v", len(data), c, err)
	}
}
