package memtable

import (
	"errors"
	"strconv"
	"testing"

	"github.com/stratadb/strata/internal/base"
)

// fuzzKey maps a byte to one of 85 user keys of 0..3 letters from "abcd".
func fuzzKey(b byte) string {
	k := make([]byte, b>>6)
	for j := range k {
		k[j] = 'a' + b>>(2*j)&3
	}
	return string(k)
}

// FuzzSkiplistModel runs op bytes against the memtable and the sorted-slice
// model. The first byte picks the capacity (small ones exercise ErrFull);
// each op byte is followed by operand bytes:
//
//	op%6 == 0, 1: insert key, seq (op>>7 = kind; op&8 chooses Set or Add)
//	op%6 == 2:    Get key, seq
//	op%6 == 3, 4: SeekGE, SeekLT (with Get at the newest seq) of key
//	op%6 == 5:    full comparison with the model
func FuzzSkiplistModel(f *testing.F) {
	f.Add([]byte{0xff, 0, 0x41, 1, 0x80, 0x41, 1, 2, 0x41, 1, 3, 0x41, 4, 0x40, 5})
	f.Add([]byte{1, 0, 1, 1, 0, 2, 2, 0, 3, 3, 0, 4, 8, 5, 6, 0, 7, 0, 6, 0x81, 5, 5})
	f.Add([]byte("\x10insert some keys and seek for them, twice over: insert some keys and seek"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		m := New(arenaStart + int64(data[0])*64)
		md := &model{}
		next := func(i *int) byte {
			*i++
			if *i < len(data) {
				return data[*i]
			}
			return 0
		}
		for i := 1; i < len(data); i++ {
			op := data[i]
			switch op % 6 {
			case 0, 1:
				key, seq := fuzzKey(next(&i)), uint64(next(&i))
				e := entry{key: key, trailer: base.MakeTrailer(seq, base.Kind(op>>7)), value: strconv.Itoa(i)}
				fuzzInsert(t, m, md, e, op&8 != 0)
			case 2:
				checkSeeks(t, m, md, fuzzKey(next(&i)), uint64(next(&i)))
			case 3, 4:
				checkSeeks(t, m, md, fuzzKey(next(&i)), base.MaxSeqNum)
			case 5:
				checkAll(t, m, md)
			}
		}
		checkAll(t, m, md)
	})
}

// fuzzInsert inserts e through Set or Retain+Add and checks the outcome,
// which may be ErrFull for a new key.
func fuzzInsert(t *testing.T, m *MemTable, md *model, e entry, viaAdd bool) {
	size, count := m.Size(), m.Count()
	var err error
	if viaAdd {
		ref := m.Retain([]byte(e.value + e.key))
		size = m.Size()
		vl, kl := uint32(len(e.value)), uint32(len(e.key))
		err = m.Add(ref, vl, kl, 0, vl, e.trailer)
	} else {
		err = m.Set([]byte(e.key), []byte(e.value), e.trailer)
	}
	switch {
	case errors.Is(err, ErrFull):
		if !md.insert(e) {
			t.Fatalf("ErrFull for a duplicate %s", e.ikey())
		}
		md.remove(e)
	case err == nil:
		if !md.insert(e) {
			t.Fatalf("duplicate %s accepted", e.ikey())
		}
		return
	case errors.Is(err, ErrRecordExists):
		if md.insert(e) {
			t.Fatalf("new key %s reported as existing", e.ikey())
		}
	default:
		t.Fatal(err)
	}
	if m.Size() != size || m.Count() != count {
		t.Fatalf("failed insert of %s changed the table: %v", e.ikey(), err)
	}
}
