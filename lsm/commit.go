package lsm

import (
	"fmt"

	"github.com/stratadb/strata/internal/base"
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
	repr      []byte
	count     uint32
	ov        *txn.Overlay // entries to apply, in key order; nil: decode repr
	seq       base.SeqNum  // of the first entry
	mem       *memtable.MemTable
	need      int64 // memtable bytes reserved until applied
	done      bool  // applied or failed
	failed    bool
	published bool
}

// maxNodeSize bounds the memtable space one entry takes besides its bytes.
const maxNodeSize = memtable.MaxNodeSize

// commitBatch makes repr durable and visible. ov, when not nil, is the
// overlay whose live entries repr holds.
func (d *DB) commitBatch(repr []byte, count uint32, ov *txn.Overlay, noSync bool) error {
	if count == 0 {
		return nil
	}
	c := &commitReq{repr: repr, count: count, ov: ov}
	end, log, err := d.enqueue(c)
	if err != nil {
		return err
	}
	if log != nil {
		err = log.Flush(end, !noSync)
	}
	if err == nil {
		err = d.apply(c)
	} else {
		d.inflight.Add(-c.need)
	}
	if err != nil {
		err = d.fail(err)
	}
	d.finish(c, err != nil)
	if err == nil {
		d.stats.commits.Add(1)
		d.stats.commitBytes.Add(int64(len(repr)))
	}
	return err
}

// enqueue performs step 1 and returns where the record ends in which log.
func (d *DB) enqueue(c *commitReq) (end int64, log *wal.Writer, err error) {
	d.commit.Lock()
	defer d.commit.Unlock()
	if err := d.writable(); err != nil {
		return 0, nil, err
	}
	c.need = int64(len(c.repr)) + int64(c.count)*maxNodeSize
	if d.commit.mem.Size()+d.inflight.Load()+c.need > d.commit.mem.Capacity() {
		if err := d.rotateLocked(c.need); err != nil {
			return 0, nil, d.fail(err)
		}
	}
	c.seq = d.commit.nextSeq
	txn.SetSeq(c.repr, c.seq)
	if log = d.commit.log; log != nil {
		if end, err = log.Append(c.repr); err != nil {
			return 0, nil, d.fail(err)
		}
	}
	d.commit.nextSeq += base.SeqNum(c.count)
	d.inflight.Add(c.need)
	c.mem = d.commit.mem
	d.publish.Lock()
	d.publish.pending = append(d.publish.pending, c)
	d.publish.Unlock()
	return end, log, nil
}

// apply performs step 3.
func (d *DB) apply(c *commitReq) error {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	defer d.inflight.Add(-c.need)
	ref := c.mem.Retain(c.repr)
	if c.ov != nil {
		var err error
		c.ov.Live(func(e txn.Item) bool {
			err = c.mem.Add(ref, e.KeyOff, uint32(len(e.Key)), e.ValOff, uint32(len(e.Value)), base.MakeTrailer(c.seq+base.SeqNum(e.Index), e.Kind))
			return err == nil
		})
		if err != nil {
			return fmt.Errorf("lsm: applying commit %d to the memtable: %w", c.seq, err)
		}
		return nil
	}
	return applyBatch(c.mem, ref, c.repr)
}

// applyBatch inserts every entry of a batch into m, in batch order.
func applyBatch(m *memtable.MemTable, ref memtable.BufRef, repr []byte) error {
	seq, _, err := txn.DecodeHeader(repr)
	if err != nil {
		return err
	}
	r, err := txn.NewReader(repr)
	if err != nil {
		return err
	}
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

// finish performs step 4: it marks c done, publishes every done commit at
// the head of the queue, and waits until c itself is published.
func (d *DB) finish(c *commitReq, failed bool) {
	p := &d.publish
	p.Lock()
	defer p.Unlock()
	c.done, c.failed = true, failed
	n := 0
	for _, h := range p.pending {
		if !h.done {
			break
		}
		if !h.failed {
			d.visibleSeq.Store(h.seq + base.SeqNum(h.count) - 1)
		}
		h.published = true
		n++
	}
	if n > 0 {
		clear(p.pending[:n])
		p.pending = p.pending[n:]
		p.cond.Broadcast()
	}
	for !c.published {
		p.cond.Wait()
	}
}
