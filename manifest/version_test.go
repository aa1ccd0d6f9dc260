package manifest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// randomVersion builds a version with random tables: overlapping ones in
// L0, disjoint ones in deeper levels. Keys are 3-digit strings.
func randomVersion(t *testing.T, rng *rand.Rand) *Version {
	e := &VersionEdit{}
	num := uint64(1)
	for range rng.IntN(8) {
		a, b := rng.IntN(1000), rng.IntN(1000)
		lo, hi := min(a, b), max(a, b)
		seq := rng.Uint64N(1000)
		e.NewFiles = append(e.NewFiles, NewFile{0, meta(num, key(lo), key(hi), seq, seq+rng.Uint64N(10))})
		num++
	}
	for level := 1; level < NumLevels; level++ {
		next := rng.IntN(50)
		for next < 1000 && rng.IntN(10) > 0 {
			hi := next + rng.IntN(60)
			if hi >= 1000 {
				break
			}
			e.NewFiles = append(e.NewFiles, NewFile{level, meta(num, key(next), key(hi), 1, 1)})
			num++
			next = hi + 1 + rng.IntN(40)
		}
	}
	return mustBuild(t, nil, e)
}

func key(i int) string { return fmt.Sprintf("%03d", i) }

func TestOverlapsRandom(t *testing.T) {
	rng := newRand(t)
	for round := range 200 {
		v := randomVersion(t, rng)
		for range 50 {
			smallest, largest := randomBounds(rng)
			for level := range NumLevels {
				got := v.Overlaps(level, smallest, largest)
				want := bruteOverlaps(v.Files(level), smallest, largest)
				if !slices.Equal(got, want) {
					t.Fatalf("round %d: Overlaps(L%d, %q, %q) = %v, want %v\n%s",
						round, level, smallest, largest, got, want, v)
				}
			}
		}
	}
}

// randomBounds returns query bounds: keys inside and outside the key space,
// equal bounds, inverted bounds, empty and nil ones.
func randomBounds(rng *rand.Rand) (smallest, largest []byte) {
	pick := func() []byte {
		switch rng.IntN(8) {
		case 0:
			return nil
		case 1:
			return []byte{}
		case 2:
			return []byte("9999")
		case 3:
			return []byte(key(rng.IntN(1000)) + "x")
		}
		return []byte(key(rng.IntN(1000)))
	}
	smallest, largest = pick(), pick()
	if rng.IntN(4) == 0 {
		largest = smallest
	}
	return smallest, largest
}

// bruteOverlaps filters files one by one: nil largest is unbounded.
func bruteOverlaps(files []*FileMetadata, smallest, largest []byte) []*FileMetadata {
	var out []*FileMetadata
	if largest != nil && bytes.Compare(smallest, largest) > 0 {
		return nil
	}
	for _, f := range files {
		if bytes.Compare(f.Largest.UserKey, smallest) >= 0 &&
			(largest == nil || bytes.Compare(f.Smallest.UserKey, largest) <= 0) {
			out = append(out, f)
		}
	}
	return out
}

func TestOverlapsPointLookup(t *testing.T) {
	v := mustBuild(t, nil, &VersionEdit{NewFiles: []NewFile{
		{1, meta(1, "b", "d", 1, 1)}, {1, meta(2, "f", "h", 1, 1)},
	}})
	for k, want := range map[string][]uint64{"a": nil, "b": {1}, "c": {1}, "d": {1}, "e": nil, "h": {2}, "i": nil} {
		var got []uint64
		for _, f := range v.Overlaps(1, []byte(k), []byte(k)) {
			got = append(got, f.FileNum)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Overlaps(L1, %q) = %v, want %v", k, got, want)
		}
	}
	if got := v.Overlaps(1, nil, nil); len(got) != 2 {
		t.Errorf("Overlaps(L1, nil, nil) = %v, want every table", got)
	}
	if got := v.Overlaps(1, []byte("e"), []byte{}); got != nil {
		t.Errorf("Overlaps with an empty (not nil) largest below smallest = %v", got)
	}
}

func TestOverlapsDoesNotAllocate(t *testing.T) {
	v := randomVersion(t, newRand(t))
	k := []byte("500")
	if n := testing.AllocsPerRun(100, func() { v.Overlaps(3, k, k) }); n != 0 {
		t.Fatalf("Overlaps below L0 allocates %v times", n)
	}
}
