package compress

import (
	"math/rand/v2"
	"testing"
)

// benchBlock is a 4 KiB data block of realistic key/value entries; a fixed
// seed keeps the numbers comparable between runs.
func benchBlock() []byte {
	return kvBlock(rand.New(rand.NewPCG(1, 2)), 4096)
}

func BenchmarkEncode(b *testing.B) {
	data := benchBlock()
	for _, c := range allCodecs {
		b.Run(c.String(), func(b *testing.B) {
			dst := make([]byte, 0, 2*len(data))
			// A first call outside the measured loop creates the shared
			// zstd encoder.
			enc, err := Encode(c, dst, data)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if enc, err = Encode(c, dst, data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(enc)), "encoded-bytes")
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	data := benchBlock()
	for _, c := range allCodecs {
		b.Run(c.String(), func(b *testing.B) {
			enc, err := Encode(c, nil, data)
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, 0, len(data))
			if _, err := Decode(c, dst, enc, len(data)); err != nil { // creates the shared zstd decoder
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(c, dst, enc, len(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
