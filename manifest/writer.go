package manifest

import (
	"errors"
	"fmt"

	"github.com/stratadb/strata/internal/failpoint"
)

// RecordWriter appends framed, checksummed records to a log file: the
// WAL's *wal.Writer satisfies it, and the engine passes one in (this package
// does not import wal). Append frames rec without retaining it and returns
// the offset at which the record ends; Flush writes the log up to end and,
// if sync is true, makes it durable; Close flushes, syncs and closes the
// file. After a failed write or sync, a RecordWriter must fail every later
// call (the WAL's writer does).
type RecordWriter interface {
	Append(rec []byte) (end int64, err error)
	Flush(end int64, sync bool) error
	Close() error
}

var (
	// ErrPoisoned is wrapped by the errors of a Writer that failed an
	// append or a sync: the manifest may end with a partial or unsynced
	// record, so no record may follow it. Start a new manifest (Create).
	ErrPoisoned = errors.New("manifest: writer failed; start a new manifest")
	// ErrClosed is returned by Writer.Append after Close.
	ErrClosed = errors.New("manifest: writer is closed")
)

// maxRetainedBuf is the largest encoding buffer a Writer keeps between
// appends; a larger one (a snapshot of a big version) is dropped.
const maxRetainedBuf = 64 << 10

// Writer appends version edits to one manifest file, each as one record,
// synced before Append returns.
//
// A Writer is for one goroutine at a time (the engine serializes its edits).
// After a failed append or sync the Writer is poisoned
// (facebook/rocksdb#6331: a later edit in the same file would follow a
// damaged record): every later Append returns an error wrapping ErrPoisoned
// and the first failure, and the caller must roll to a new manifest.
type Writer struct {
	rw           RecordWriter
	fileNum      uint64
	buf          []byte
	size         int64 // end of the last record appended
	snapshotSize int64 // end of the first record (the snapshot)
	err          error // sticky: the first append or sync failure
	closed       bool
}

// NewWriter returns a Writer that appends edits to rw, the record writer
// of manifest fileNum. The Writer owns rw from now on and closes it in
// Close. The first edit appended should be a snapshot (SnapshotEdit);
// Create does this.
func NewWriter(rw RecordWriter, fileNum uint64) *Writer {
	return &Writer{rw: rw, fileNum: fileNum}
}

// FileNum returns the number of the manifest the Writer appends to.
func (w *Writer) FileNum() uint64 { return w.fileNum }

// Append encodes e, appends it as one record and syncs the manifest. When
// it returns nil, the edit is durable. A malformed edit (a level out of
// range, a nil Meta, a reserved namespace id: what Decode could not return)
// is refused with an error, without I/O and without poisoning the Writer. A failed append or sync poisons it: the
// edit may or may not be durable. It does not allocate once its buffer has
// grown to the size of the largest edit (up to 64 KiB; a larger buffer is
// not kept).
func (w *Writer) Append(e *VersionEdit) error {
	switch {
	case w.closed:
		return ErrClosed
	case w.err != nil:
		return fmt.Errorf("%w: %w", ErrPoisoned, w.err)
	}
	if err := e.validate(); err != nil {
		return fmt.Errorf("manifest: %s: refused edit: %w", FileName(w.fileNum), err)
	}
	w.buf = e.Encode(w.buf[:0])
	end, err := w.rw.Append(w.buf)
	if err == nil && failpoint.Enabled {
		// Written, not yet synced: the crash point between the two.
		if err = w.rw.Flush(end, false); err == nil {
			failpoint.Hit(failpoint.ManifestAfterAppendBeforeSync)
		}
	}
	if err == nil {
		err = w.rw.Flush(end, true)
	}
	if err != nil {
		w.err = fmt.Errorf("manifest: %s: append: %w", FileName(w.fileNum), err)
		return fmt.Errorf("%w: %w", ErrPoisoned, w.err)
	}
	w.size = end
	if w.snapshotSize == 0 {
		w.snapshotSize = end
	}
	if cap(w.buf) > maxRetainedBuf {
		w.buf = nil // a snapshot's buffer: let the GC have it
	}
	return nil
}

// Size returns the manifest's size: the end of the last record appended.
func (w *Writer) Size() int64 { return w.size }

// Err returns the failure that poisoned the Writer, or nil.
func (w *Writer) Err() error { return w.err }

// ShouldRoll tells whether the engine should start a new manifest: the
// Writer is poisoned, or the manifest has grown past maxSize and past twice
// its first record (a snapshot larger than maxSize would otherwise make
// every edit roll). It keeps working after Close.
func (w *Writer) ShouldRoll(maxSize int64) bool {
	return w.err != nil || w.size >= max(maxSize, 2*w.snapshotSize)
}

// Close appends an empty record, the sync marker, and closes the record
// writer (which syncs what it holds) and the file. The marker's framing
// records that every edit before it is durable, so that damage to the last
// edit of a manifest closed cleanly reads as corruption, not as the torn
// tail a crash leaves (a crash never leaves a marker). It is idempotent:
// later calls return nil. A Writer that is poisoned appends no marker and
// still closes its file; the error is then its record writer's.
func (w *Writer) Close() error { return w.close(true) }

// Abandon closes the file like Close, but without the sync marker: for a
// manifest the engine is about to remove, having made another one current.
// It spares the marker's write and sync.
func (w *Writer) Abandon() error { return w.close(false) }

func (w *Writer) close(marker bool) error {
	if w.closed {
		return nil
	}
	w.closed = true
	var err error
	if marker && w.err == nil && w.size > 0 {
		_, err = w.rw.Append(nil)
	}
	if err = errors.Join(err, w.rw.Close()); err != nil {
		return fmt.Errorf("manifest: %s: close: %w", FileName(w.fileNum), err)
	}
	return nil
}
