package lsm

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stratadb/strata/internal/vfs"
)

// fuzzMaxOps bounds the operations of one fuzz input, so that an exec
// takes milliseconds.
const fuzzMaxOps = 300

// byteSource is a rand.Source that replays the fuzz input: each Uint64 is
// one input byte spread over all 64 bits, so that IntN(n) maps byte b to
// about b*n/256 (and, for a power of two n, to b mod n). Past the end of
// the input it returns a counter-driven sequence, so that rejection loops
// of math/rand still terminate.
type byteSource struct {
	data []byte
	pos  int
	tail uint64
}

func (s *byteSource) Uint64() uint64 {
	if s.pos < len(s.data) {
		b := s.data[s.pos]
		s.pos++
		return uint64(b) * 0x0101010101010101
	}
	s.pos++
	s.tail += 0x9e3779b97f4a7c15
	z := s.tail
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (s *byteSource) exhausted() bool { return s.pos >= len(s.data) }

// FuzzTxnDifferential runs the operations an input encodes on a DB on a
// MemFS and checks every read against the map model of model_test.go:
// transactions, single-key writes, the three kinds of readers, snapshots,
// offsets, reopens and (unless NoSync) power cuts, after which every
// acknowledged commit must still be there.
func FuzzTxnDifferential(f *testing.F) {
	f.Fuzz(fuzzTxnDifferential)
}

func fuzzTxnDifferential(t *testing.T, data []byte) {
	src := &byteSource{data: data}
	mem := vfs.NewMem()
	opts := &Options{FS: mem, MemTableSize: 64 << 10}
	r := &modelRun{t: t, rng: rand.New(src), dir: "db", opts: opts, keys: 32}
	opts.NoSync = r.rng.IntN(4) == 0
	r.m = model{committed: map[string]string{}, offsets: map[string]int64{}}
	r.db = openTest(t, r.dir, r.opts)
	for step := 0; step < fuzzMaxOps && !src.exhausted(); step++ {
		if r.fuzzStep(step) {
			mem = mem.CrashClone(vfs.CrashCloneConfig{})
			r.opts.FS = mem
			r.reopen(step)
		}
	}
	r.checkAll("end")
}

// fuzzValue returns a value unique to step: short, or about 40 KiB (which
// crosses WAL blocks) for one draw in 64.
func (r *modelRun) fuzzValue(step int) string {
	n := r.rng.IntN(16)
	if r.rng.IntN(64) == 0 {
		n = 40 << 10
	}
	return fmt.Sprintf("v%d.", step) + strings.Repeat(string(rune('a'+r.rng.IntN(26))), n)
}

// fuzzStep runs one operation; it reports whether the caller should
// simulate a power cut and reopen on the synced state.
func (r *modelRun) fuzzStep(step int) (crash bool) {
	t, rng, m := r.t, r.rng, &r.m
	var mt *modelTxn
	if len(m.open) > 0 {
		mt = m.open[rng.IntN(len(m.open))]
	}
	what := func(s string) string { return fmt.Sprintf("op %d %s", step, s) }
	switch op := rng.IntN(20); {
	case op == 0 && len(m.open) < 3:
		m.open = append(m.open, &modelTxn{t: r.db.Begin(nil), writes: map[string]*string{}, stamps: map[string]uint64{}, offsets: map[string]int64{}})
	case op <= 4 && mt != nil:
		r.fuzzTxnWrite(step, mt)
	case op == 5 && mt != nil:
		name := fmt.Sprint("p", rng.IntN(4))
		off := int64(rng.IntN(1 << 16))
		mt.offsets[name] = off
		must(t, mt.t.SetOffset(name, off))
	case op == 6 && mt != nil:
		r.checkGet(what("txn get"), mt.t, r.key(), m.view(mt))
	case op == 7 && mt != nil:
		r.checkIter(what("txn iter"), mt.t, m.view(mt), mt)
	case op == 8 && mt != nil:
		r.fuzzCommit(step, mt)
	case op == 9 && mt != nil:
		must(t, mt.t.Rollback())
		r.closeTxn(mt)
	case op <= 10:
		r.fuzzDBWrite(step)
	case op == 11:
		r.checkGet(what("db get"), r.db, r.key(), m.committed)
	case op == 12:
		if rng.IntN(2) == 0 {
			r.checkGet(what("uncommitted get"), r.db.Reader(ReadUncommitted), r.key(), m.uncommittedView())
		} else {
			r.checkIter(what("uncommitted iter"), r.db.Reader(ReadUncommitted), m.uncommittedView(), nil)
		}
	case op == 13:
		r.checkIter(what("db iter"), r.db, m.view(nil), nil)
	case op == 14:
		if got, err := r.db.CommittedOffsets(); err != nil || fmt.Sprint(got) != fmt.Sprint(m.offsets) {
			t.Fatalf("op %d: offsets %v (%v), want %v", step, got, err, m.offsets)
		}
	case op == 15:
		if rng.IntN(4) == 0 {
			r.reopen(step)
		}
	case op == 16:
		return !r.opts.NoSync && rng.IntN(4) == 0
	default:
		r.fuzzSnapshot(step)
	}
	return false
}

func (r *modelRun) fuzzTxnWrite(step int, mt *modelTxn) {
	k := r.key()
	r.m.stamp++
	mt.stamps[k] = r.m.stamp
	if r.rng.IntN(4) == 0 {
		mt.writes[k] = nil
		must(r.t, mt.t.Delete([]byte(k)))
		return
	}
	v := r.fuzzValue(step)
	mt.writes[k] = &v
	must(r.t, mt.t.Set([]byte(k), []byte(v)))
}

func (r *modelRun) fuzzCommit(step int, mt *modelTxn) {
	if err := mt.t.Commit(); err != nil {
		r.t.Fatalf("op %d: commit: %v", step, err)
	}
	for k, v := range mt.writes {
		if v == nil {
			delete(r.m.committed, k)
		} else {
			r.m.committed[k] = *v
		}
	}
	for k, v := range mt.offsets {
		r.m.offsets[k] = v
	}
	r.closeTxn(mt)
}

func (r *modelRun) fuzzDBWrite(step int) {
	k := r.key()
	if r.rng.IntN(3) == 0 {
		if err := r.db.Delete([]byte(k)); err != nil {
			r.t.Fatalf("op %d: delete %q: %v", step, k, err)
		}
		delete(r.m.committed, k)
		return
	}
	v := r.fuzzValue(step)
	if err := r.db.Set([]byte(k), []byte(v)); err != nil {
		r.t.Fatalf("op %d: set %q: %v", step, k, err)
	}
	r.m.committed[k] = v
}

// fuzzSnapshot opens a snapshot (at most 2 at a time), reads one, or
// closes the oldest.
func (r *modelRun) fuzzSnapshot(step int) {
	switch r.rng.IntN(3) {
	case 0:
		if len(r.snaps) < 2 {
			s, err := r.db.NewSnapshot()
			must(r.t, err)
			r.snaps = append(r.snaps, modelSnap{s, r.m.view(nil)})
		}
	case 1:
		if len(r.snaps) > 0 {
			ms := r.snaps[r.rng.IntN(len(r.snaps))]
			what := fmt.Sprintf("op %d snapshot", step)
			r.checkGet(what+" get", ms.s, r.key(), ms.data)
			r.checkIter(what+" iter", ms.s, ms.data, nil)
		}
	default:
		if len(r.snaps) > 0 {
			must(r.t, r.snaps[0].s.Close())
			r.snaps = r.snaps[1:]
		}
	}
}
