package lsm

import (
	"errors"
	"time"

	"github.com/stratadb/strata/memtable"
)

// rotateLocked makes room for a commit needing need bytes of memtable: the
// full memtable joins the memtables waiting to be flushed and a new WAL
// file starts, so that the flush can retire the old file with the old
// memtable. A memtable that is still empty is only replaced by a larger
// one. An in-memory store has no WAL: its full memtable joins the queue
// all the same, to be flushed into tables in memory. d.commit's mutex is
// held.
//
// The old WAL is closed (written and synced) before the new one is
// created: a log after the newest non-empty one never holds a record, so
// after a crash at any point only the newest log can have a torn tail.
func (d *DB) rotateLocked(need int64) error {
	newMem := newMemTable(d.opts.MemTableSize, need)
	old, oldLog := d.commit.slot, d.walNum.Load()
	// Decided once: the WAL rotation and the memtable's fate must agree.
	unused := old.unused()
	if !unused && !d.opts.InMemory {
		log := d.commit.log
		if log == nil {
			// A rotation failed before: the store is read-only, and
			// every caller checks that first under d.commit's mutex.
			return errors.New("lsm: rotation without a WAL (a rotation failed before)")
		}
		d.commit.log = nil
		if err := closeWAL(log); err != nil {
			return err
		}
		if err := d.newLog(); err != nil {
			return err
		}
	}
	d.commit.slot = &memSlot{mem: newMem}
	d.mu.Lock()
	defer d.mu.Unlock()
	if unused {
		d.installReadStateLocked(append([]*memtable.MemTable{newMem}, d.rs.Load().mems[1:]...))
		return nil
	}
	d.mu.imm = append(d.mu.imm, &flushable{mem: old.mem, logNum: oldLog, lastSeq: d.commit.nextSeq - 1})
	d.mu.activeLog = d.walNum.Load()
	d.installReadStateLocked(d.memsLocked(newMem))
	d.stats.rotations.Add(1)
	d.opts.Logger.Info("rotated the memtable and WAL", "wal", logFileName(d.mu.activeLog), "memtables", len(d.mu.imm)+1)
	d.mu.cond.Broadcast() // wakes the flush
	return nil
}

// stallLocked waits while the memtables waiting to be flushed, or the
// tables of level 0, have reached their stop-writes thresholds: the caller
// holds d.commit's mutex, so every writer waits, and memory stays bounded.
// Writes resume by themselves once a flush or compaction catches up. It
// returns an error only if the DB fails or closes meanwhile.
func (d *DB) stallLocked() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var start time.Time
	for d.stalledLocked() {
		if err := d.bgBlockedLocked(); err != nil {
			return err
		}
		if start.IsZero() {
			start = time.Now()
			d.stats.stalls.Add(1)
			d.opts.Logger.Warn("writes stalled", "immutable_memtables", len(d.mu.imm),
				"l0_tables", d.mu.current.NumFiles(0))
		}
		d.mu.cond.Wait()
	}
	if !start.IsZero() {
		waited := time.Since(start)
		d.stats.stallNanos.Add(int64(waited))
		d.opts.Logger.Info("writes resumed", "stalled", waited.Round(time.Microsecond))
	}
	return nil
}

// stalledLocked reports whether writes must wait. d.mu is held.
func (d *DB) stalledLocked() bool {
	if len(d.mu.imm)+1 >= d.opts.MemTableStopWritesThreshold {
		return true
	}
	return !d.opts.DisableAutomaticCompactions && d.mu.current.NumFiles(0) >= d.opts.L0StopWritesThreshold
}

// updateSlowdownLocked turns the write slowdown on while level 0 holds
// L0SlowdownWritesThreshold tables or more. d.mu is held.
func (d *DB) updateSlowdownLocked() {
	d.slowdown.on.Store(!d.opts.DisableAutomaticCompactions &&
		d.mu.current.NumFiles(0) >= d.opts.L0SlowdownWritesThreshold)
}

// throttle holds a commit of n bytes to Options.DelayedWriteRate while the
// slowdown is on: commits add to a debt, and the one that brings it past a
// millisecond's worth sleeps it off.
func (d *DB) throttle(n int64) {
	s := &d.slowdown
	rate := d.opts.DelayedWriteRate
	s.mu.Lock()
	s.debt += n
	var wait time.Duration
	if s.debt >= rate/1000 {
		wait = time.Duration(s.debt * int64(time.Second) / rate)
		s.debt = 0
	}
	s.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait)
		d.stats.slowdownNanos.Add(int64(wait))
	}
}
