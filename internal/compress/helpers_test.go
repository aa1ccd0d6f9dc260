package compress

import (
	"encoding/binary"
	"fmt"
	"github.com/stratadb/strata/internal/testseed"
	"math/rand/v2"
	"testing"
)

// newRand returns the generator of a randomized test, logging its seed.
func newRand(t testing.TB) *rand.Rand {
	s := testseed.Seed(t)
	return rand.New(rand.NewPCG(s, s>>32|1))
}

// allCodecs lists every known codec.
var allCodecs = []Codec{None, Snappy, Zstd}

// kvBlock returns n bytes that look like a table's data block: entries of
// uvarint key length, uvarint value length, key, value, with keys in order
// and JSON-like values, as an order or user store would hold.
func kvBlock(r *rand.Rand, n int) []byte {
	statuses := []string{"pending", "paid", "shipped", "delivered", "refunded"}
	names := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
	b := make([]byte, 0, n+256)
	user := r.IntN(1000000)
	for order := 0; len(b) < n; order++ {
		if r.IntN(8) == 0 {
			user += 1 + r.IntN(50)
		}
		key := fmt.Sprintf("user/%08d/orders/%06d", user, order)
		val := fmt.Sprintf(`{"id":%d,"customer":%q,"amount":%d.%02d,"ts":%d,"status":%q,"items":%d}`,
			r.IntN(1<<30), names[r.IntN(len(names))], r.IntN(10000), r.IntN(100),
			1700000000000+r.Int64N(1<<32), statuses[r.IntN(len(statuses))], 1+r.IntN(9))
		b = binary.AppendUvarint(b, uint64(len(key)))
		b = binary.AppendUvarint(b, uint64(len(val)))
		b = append(b, key...)
		b = append(b, val...)
	}
	return b[:n]
}

// randomBytes returns n incompressible bytes.
func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
