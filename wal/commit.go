package wal

import (
	"fmt"
	"io"

	"github.com/stratadb/strata/internal/failpoint"
)

// Flush returns once every byte of the log up to end (an offset returned by
// Append, or Size) has been written to the file and, if sync is true, made
// durable with File.Sync.
//
// Flush is safe for concurrent use and is where group commit happens: while
// one caller writes and syncs, the others wait; the next one to run writes
// everything appended meanwhile with one Write and, if any waiter asked for
// a sync, syncs once for all of them. A caller whose bytes are already
// written (and synced, if it asks) returns at once without I/O.
//
// After a write or sync failure, Flush returns an error wrapping the first
// failure, whatever end is. After Close, Flush of bytes appended before Close
// returns nil, since Close synced them. An end beyond Size is an error.
func (w *Writer) Flush(end int64, sync bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if size := w.mu.start + int64(len(w.mu.buf)); end > size {
		return fmt.Errorf("wal: log %d: flush to offset %d beyond appended size %d",
			w.logNum, end, size)
	}
	for {
		if w.mu.err != nil {
			return w.mu.err
		}
		if w.mu.written >= end && (!sync || w.mu.synced >= end) {
			return nil
		}
		if sync && w.mu.syncReq < end {
			w.mu.syncReq = end
		}
		if w.mu.flushing {
			w.mu.cond.Wait()
			continue
		}
		w.lead()
	}
}

// lead writes the pending buffer (and syncs if a waiter asked) as the leader
// of a group. It is called and returns with w.mu held, and releases it
// during the I/O so that Appends and new waiters can go on.
func (w *Writer) lead() {
	data := w.mu.buf
	w.mu.buf, w.mu.spare = w.mu.spare[:0], nil
	off := w.mu.start
	w.mu.start += int64(len(data))
	end := w.mu.start
	doSync := w.mu.syncReq > w.mu.synced
	w.mu.flushing = true
	w.mu.Unlock()

	werr := w.write(data, off)
	var serr error
	if werr == nil && doSync {
		serr = w.sync(end)
	}

	w.mu.Lock()
	w.mu.flushing = false
	switch {
	case werr != nil:
		w.mu.err = werr
	case serr != nil:
		w.mu.written = end
		w.mu.err = serr
	default:
		w.mu.written = end
		if doSync {
			w.mu.synced = end
		}
	}
	if cap(data) <= maxRetainedBuf {
		w.mu.spare = data[:0]
	}
	w.mu.cond.Broadcast()
}

// write writes data, which belongs at file offset off, with one Write call.
func (w *Writer) write(data []byte, off int64) error {
	if len(data) == 0 {
		return nil
	}
	if failpoint.Enabled && len(data) > 2*blockSize {
		// A record spanning blocks, cut in the middle by a crash.
		half := len(data) / 2
		if n, err := w.f.Write(data[:half]); err != nil || n < half {
			return fmt.Errorf("wal: log %d: write of %d bytes at offset %d (wrote %d): %w", w.logNum, half, off, n, err)
		}
		failpoint.Hit(failpoint.WALMidRecord)
		data, off = data[half:], off+int64(half)
	}
	n, err := w.f.Write(data)
	if err == nil && n < len(data) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("wal: log %d: write of %d bytes at offset %d (wrote %d): %w",
			w.logNum, len(data), off, n, err)
	}
	return nil
}

// sync makes the file durable; end is the offset it covers, for the error.
func (w *Writer) sync(end int64) error {
	failpoint.Hit(failpoint.WALBeforeSync)
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("wal: log %d: sync up to offset %d: %w", w.logNum, end, err)
	}
	return nil
}

// Close writes and syncs every record appended before it, then closes the
// file. Appends after Close return ErrClosed; Flush of bytes appended before
// Close returns nil without I/O.
//
// Close is idempotent and safe for concurrent use: later calls wait for the
// first and return its result. If the writer was poisoned, Close still
// closes the file and returns the poisoning error.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() { w.closeErr = w.close() })
	return w.closeErr
}

func (w *Writer) close() error {
	w.mu.Lock()
	w.mu.closed = true
	size := w.mu.start + int64(len(w.mu.buf))
	w.mu.Unlock()
	err := w.Flush(size, true)
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("wal: log %d: close: %w", w.logNum, cerr)
	}
	return err
}
