package memtable

import (
	"math"

	"github.com/stratadb/strata/internal/base"
)

// Get returns the value and kind of the newest entry for userKey whose
// sequence number is at most seq, and whether there is one. A found
// tombstone is reported with kind base.KindDelete (and its value, usually
// empty). The value aliases a retained buffer and stays valid while the
// memtable is reachable; the caller must not modify it. Safe to call
// concurrently with anything; it allocates nothing.
func (m *MemTable) Get(userKey []byte, seq uint64) (value []byte, kind base.Kind, found bool) {
	seq = min(seq, base.MaxSeqNum)
	d := *m.dir.Load()
	t := target{d: &d, key: userKey, trailer: seq<<8 | 0xff}
	_, next, _ := m.seek(&t)
	if next == tailNode {
		return nil, 0, false
	}
	nd := m.arena.node(next)
	if string(m.userKey(&d, nd)) != string(userKey) {
		return nil, 0, false
	}
	return m.value(&d, nd), base.TrailerKind(nd.trailer), true
}

// seekUser positions before every version of userKey: the search target
// for "first entry whose user key is >= userKey".
const seekUser = math.MaxUint64
