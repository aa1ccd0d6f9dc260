package lsm

import (
	"fmt"
	"strconv"
)

// crashMaxWrite bounds the data keys of one crash-workload transaction.
const crashMaxWrite = 8

// The crash workload: partition p's transaction s writes 1..8 data keys
// d/p/s/i and a count key d/p/s/_n, sets offset p = s, and every seventh
// one deletes the keys of transaction s-5. Values are a function of (p, s,
// i), some larger than a WAL block. Some transactions are rolled back after
// writing unique keys r/p/s/* that must never appear. Everything is
// deterministic, so the expected store for any committed offset can be
// recomputed.

func mix(x uint64) uint64 {
	x ^= x >> 31
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 29
	x *= 0x94D049BB133111EB
	return x ^ x>>32
}

func crashWrites(p, s int) int { return 1 + int(mix(uint64(p)<<32|uint64(s))%crashMaxWrite) }

func crashDeletes(s int) bool { return s >= 5 && s%7 == 6 }

func crashKey(p, s int, i int) string {
	if i < 0 {
		return fmt.Sprintf("d/%d/%06d/_n", p, s)
	}
	return fmt.Sprintf("d/%d/%06d/%02d", p, s, i)
}

func crashValue(p, s, i int) []byte {
	h := mix(uint64(p)<<40 ^ uint64(s)<<8 ^ uint64(i))
	n := int(h % 200)
	if h%16 == 0 {
		n = 33000 + int(h%20000)
	}
	v := make([]byte, n+8)
	for j := range v {
		v[j] = byte(h >> (8 * (j % 8)))
	}
	copy(v, strconv.Itoa(s))
	return v
}

// crashExpected returns the data keys and values partition p must hold when
// its committed offset is o.
func crashExpected(p, o int) map[string]string {
	m := map[string]string{}
	for s := 0; s <= o; s++ {
		n := crashWrites(p, s)
		for i := 0; i < n; i++ {
			m[crashKey(p, s, i)] = string(crashValue(p, s, i))
		}
		m[crashKey(p, s, -1)] = strconv.Itoa(n)
		if crashDeletes(s) {
			d := s - 5
			for i := 0; i < crashWrites(p, d); i++ {
				delete(m, crashKey(p, d, i))
			}
			delete(m, crashKey(p, d, -1))
		}
	}
	return m
}
