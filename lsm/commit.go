package lsm

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/failpoint"
	"github.com/stratadb/strata/memtable"
	"github.com/stratadb/strata/txn"
	"github.com/stratadb/strata/wal"
)

// A commit goes through four steps:
//
//  1. Under d.commit's mutex it takes the next sequence numbers, writes them
//     into its batch header, makes room in the memtable (rotating memtable
//     and WAL file if needed) and frames its record into the WAL buffer.
//     WAL order is therefore sequence order.
//  2. Outside any lock, wal.Writer.Flush writes the record; concurrent
//     commits share one write(2) and, when syncing, one fdatasync.
//  3. Under applyMu (the memtable has one writer) it inserts its entries into
//     the memtable. The memtable references the batch bytes; nothing is
//     copied.
//  4. It becomes visible: visibleSeq advances over the commits that are done,
//     in sequence order, so no reader ever sees part of a commit or a commit
//     before an earlier one. Commit returns once its own writes are visible.

// commitReq is one commit in flight.
type commitReq struct {
	// parts are the batch representation, in pieces that concatenate to
	// the WAL record; the memtable retains each piece as it is.
	parts [][]byte
	size  int64
	count uint32
	ov    *txn.Overlay // entries to apply, in key order; nil: decode parts[0]
	seq   base.SeqNum  // of the first entry
	slot  *memSlot     // the memtable the commit applies to
	need  int64        // bytes reserved in slot until applied
	// Set by finish under d.publish's mutex.
	done, failed bool
	err          error // why a commit that could not be published failed
	published    sync.WaitGroup
	one          [1][]byte // backs parts for a batch in one piece
}

// commitReqs recycles commitReqs: a commit allocates nothing of its own.
var commitReqs = sync.Pool{New: func() any { return new(commitReq) }}

// recycle clears c, whose commit has been published (no one else refers to
// it), and returns it to commitReqs.
func (c *commitReq) recycle() {
	c.parts, c.one[0], c.ov, c.slot, c.err = nil, nil, nil, nil, nil
	c.size, c.count, c.seq, c.need = 0, 0, 0, 0
	c.done, c.failed = false, false
	commitReqs.Put(c)
}

// memSlot is the active memtable with the room promised to commits that
// will apply to it.
type memSlot struct {
	mem      *memtable.MemTable
	reserved atomic.Int64
}

// fits reports whether need more bytes fit in the slot's memtable. The
// caller holds d.commit's mutex, so no reservation is added meanwhile.
//
// The reservation is read before the memtable: a commit in flight applies
// to the memtable and only then drops its reservation, so read in this
// order its bytes are counted at least once. Read the other way round, a
// commit that applies between the two loads would be counted in neither.
func (s *memSlot) fits(need int64) bool {
	reserved := s.reserved.Load()
	return s.mem.Size()+reserved+need <= s.mem.Capacity()
}

// unused reports whether no commit has used or reserved the slot. The
// caller holds d.commit's mutex. As in fits, the reservation is read
// first: a commit that applied and dropped its reservation between the two
// loads of the other order would leave a memtable holding its entries
// reported unused, and rotateLocked would drop it (bug 13 in
// docs/RELIABILITY.md).
func (s *memSlot) unused() bool {
	if s.reserved.Load() != 0 {
		return false
	}
	return s.mem.Empty()
}

// maxNodeSize bounds the memtable space one entry takes besides its bytes.
const maxNodeSize = memtable.MaxNodeSize

// maxCommitNeed is the most memtable space one commit may need: a memtable
// arena addresses at most 4 GiB.
const maxCommitNeed = 4<<30 - memTableOverhead - 1

// commitRepr makes a plain batch representation durable and visible; its
// entries are applied in batch order.
func (d *DB) commitRepr(repr []byte, count uint32, noSync bool) error {
	c := commitReqs.Get().(*commitReq)
	c.one[0] = repr
	c.parts, c.count = c.one[:], count
	return d.runCommit(c, noSync)
}

// commitOverlay makes a transaction's overlay durable and visible; its live
// entries are applied in key order.
func (d *DB) commitOverlay(ov *txn.Overlay, noSync bool) error {
	c := commitReqs.Get().(*commitReq)
	c.parts, c.count, c.ov = ov.Parts(), ov.Count(), ov
	return d.runCommit(c, noSync)
}

// runCommit takes c through the four steps and recycles it.
func (d *DB) runCommit(c *commitReq, noSync bool) error {
	defer c.recycle()
	if c.count == 0 {
		return nil
	}
	held := int64(0) // what the memtable will keep alive: whole arrays
	for _, p := range c.parts {
		c.size += int64(len(p))
		held += int64(cap(p))
	}
	c.need = held + int64(c.count)*maxNodeSize
	if c.need > maxCommitNeed {
		return fmt.Errorf("%w: a commit of %d entries and %d bytes exceeds what one memtable can hold", ErrTxnTooLarge, c.count, c.size)
	}
	if d.slowdown.on.Load() {
		d.throttle(c.size)
	}
	end, log, err := d.enqueue(c)
	if err != nil {
		return err
	}
	if log != nil {
		failpoint.Hit(failpoint.WALBeforeWrite)
		err = log.Flush(end, !noSync)
	}
	if err == nil {
		failpoint.Hit(failpoint.WALAfterSyncBeforeApply)
		err = d.apply(c)
		failpoint.Hit(failpoint.MemtableAfterApplyBeforeAck)
	}
	c.slot.reserved.Add(-c.need)
	if err != nil {
		err = d.fail(err)
	}
	if err = d.finish(c, err); err == nil {
		d.stats.commits.Add(1)
		d.stats.commitBytes.Add(c.size)
	}
	return err
}

// enqueue performs step 1 and returns where the record ends in which log
// (nil for an in-memory store).
func (d *DB) enqueue(c *commitReq) (end int64, log *wal.Writer, err error) {
	d.commit.Lock()
	defer d.commit.Unlock()
	if err := d.writable(); err != nil {
		return 0, nil, err
	}
	if !d.commit.slot.fits(c.need) {
		if !d.commit.slot.unused() {
			if err := d.stallLocked(); err != nil {
				return 0, nil, err
			}
		}
		if err := d.rotateLocked(c.need); err != nil {
			return 0, nil, d.fail(err)
		}
	}
	c.seq = d.commit.nextSeq
	txn.SetSeq(c.parts[0], c.seq)
	if !d.opts.InMemory {
		if log = d.commit.log; log == nil {
			return 0, nil, d.fail(errors.New("lsm: no WAL to write to"))
		}
		if end, err = log.AppendParts(c.parts); err != nil {
			return 0, nil, d.fail(err)
		}
	}
	d.commit.nextSeq += base.SeqNum(c.count)
	c.slot = d.commit.slot
	c.slot.reserved.Add(c.need)
	c.published.Add(1)
	d.publish.Lock()
	d.publish.pending = append(d.publish.pending, c)
	d.publish.Unlock()
	return end, log, nil
}

// apply performs step 3.
func (d *DB) apply(c *commitReq) error {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	m := c.slot.mem
	if c.ov == nil {
		return applyBatch(m, m.Retain(c.parts[0]), c.parts[0])
	}
	refs := make([]memtable.BufRef, len(c.parts))
	for i, p := range c.parts {
		refs[i] = m.Retain(p)
	}
	var err error
	c.ov.Live(func(e txn.Item) bool {
		err = m.Add(refs[e.Part], e.KeyOff, uint32(len(e.Key)), e.ValOff, uint32(len(e.Value)), base.MakeTrailer(c.seq+base.SeqNum(e.Index), e.Kind))
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("lsm: applying commit %d to the memtable: %w", c.seq, err)
	}
	return nil
}

// applyBatch inserts every entry of a batch into m, in batch order.
func applyBatch(m *memtable.MemTable, ref memtable.BufRef, repr []byte) error {
	r, err := txn.NewReader(repr)
	if err != nil {
		return err
	}
	seq := r.Seq()
	for {
		e, ok, err := r.Next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		err = m.Add(ref, e.KeyOff, uint32(len(e.Key)), e.ValOff, uint32(len(e.Value)), base.MakeTrailer(seq+base.SeqNum(e.Index), e.Kind))
		if err != nil {
			return fmt.Errorf("lsm: applying commit %d to the memtable: %w", seq, err)
		}
	}
}

// finish performs step 4: it marks c done (failed with err, if not nil),
// publishes every done commit at the head of the queue, and waits until c
// itself is published. Once a commit has failed, visibility stops there:
// the commits queued behind it are not published and fail too (the DB is
// read-only by then), so that no reader ever sees a commit after a hole, or
// part of a commit whose apply failed.
func (d *DB) finish(c *commitReq, err error) error {
	p := &d.publish
	p.Lock()
	c.done, c.failed, c.err = true, err != nil, err
	n := 0
	for _, h := range p.pending {
		if !h.done {
			break
		}
		switch {
		case p.halted != nil && !h.failed:
			h.failed, h.err = true, fmt.Errorf("%w: an earlier commit failed: %w", ErrReadOnly, p.halted)
		case h.failed:
			if p.halted == nil {
				p.halted = h.err
			}
		default:
			d.visibleSeq.Store(h.seq + base.SeqNum(h.count) - 1)
		}
		h.published.Done()
		n++
	}
	rest := copy(p.pending, p.pending[n:])
	clear(p.pending[rest:])
	p.pending = p.pending[:rest]
	p.Unlock()
	c.published.Wait()
	return c.err
}
