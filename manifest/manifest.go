package manifest

import (
	"errors"
	"fmt"
	"io"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/vfs"
)

// RecordReader returns the records of a log file in order: the WAL's
// *wal.Reader satisfies it (opened with newest true, so that a torn tail
// of the manifest reads as its end). Next returns io.EOF at the end and an
// error wrapping base.ErrCorruption on damage; the record it returns needs
// to stay valid only until the next call.
type RecordReader interface {
	Next() ([]byte, error)
}

// NewRecordWriter makes the RecordWriter of a new manifest file f, whose
// file number is fileNum; it owns f. The engine passes
// func(f vfs.File, n uint64) manifest.RecordWriter { return wal.NewWriter(f, n) }.
type NewRecordWriter func(f vfs.File, fileNum uint64) RecordWriter

// NewRecordReader makes the RecordReader of manifest file f (named name,
// for errors), whose file number is fileNum; it does not own f. The engine
// passes a function returning wal.NewReader(f, fileNum, name, true).
type NewRecordReader func(f vfs.File, fileNum uint64, name string) RecordReader

// Replay applies every edit of a manifest log, from an empty version and a
// zero State, and returns the version (holding one reference) and the
// state; empty records (the sync marker Writer.Close appends) are
// skipped. It fails with an error wrapping base.ErrCorruption if the log
// holds no edit, if an edit does not decode or does not apply (see
// Builder.Apply, State.Apply), or if the result is inconsistent (see
// Validate); a read error of r is returned wrapped. Errors name the
// record's index.
func Replay(r RecordReader) (*Version, State, error) {
	b := NewBuilder(nil)
	var s State
	edits := 0
	for n := 0; ; n++ {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil && len(rec) == 0 {
			continue // the sync marker Close appends
		}
		if err == nil {
			err = replayOne(b, &s, rec)
			edits++
		}
		if err != nil {
			return nil, State{}, fmt.Errorf("manifest: record %d: %w", n, err)
		}
	}
	if edits == 0 {
		return nil, State{}, base.CorruptionErrorf("manifest: holds no version edit")
	}
	v, err := b.Build()
	if err == nil {
		err = Validate(v, s)
	}
	if err != nil {
		return nil, State{}, fmt.Errorf("manifest: after %d edits: %w", edits, err)
	}
	return v, s, nil
}

// replayOne decodes one record and applies it to b and s.
func replayOne(b *Builder, s *State, rec []byte) error {
	e, err := Decode(rec)
	if err != nil {
		return err
	}
	if err := b.Apply(&e); err != nil {
		return err
	}
	*s, err = s.Apply(&e)
	return err
}

// Create starts manifest fileNum in directory dirname and makes it current:
// it creates the file, appends a snapshot of v and s (SnapshotEdit) as its
// first record, synced, then switches CURRENT to it (SetCurrent, which
// syncs the directory before and after the switch). It returns the Writer
// for later edits. fileNum must be a number the engine allocated: nonzero
// and below s.NextFileNumber; v and s must pass Validate.
//
// On error, no Writer is returned and the new file (if any) is left for the
// caller's cleanup of obsolete files; CURRENT names the old manifest or,
// if the switch failed after the rename, possibly the new one (both then
// describe the same state). The caller keeps the old manifest and may try
// again with another file number.
func Create(fs vfs.FS, dirname string, fileNum uint64, newRW NewRecordWriter, v *Version, s State) (*Writer, error) {
	name := fs.PathJoin(dirname, FileName(fileNum))
	if fileNum == 0 || fileNum >= s.NextFileNumber {
		return nil, fmt.Errorf("manifest: create %s: file number %d is 0 or not below the next file number %d",
			name, fileNum, s.NextFileNumber)
	}
	if err := Validate(v, s); err != nil {
		return nil, fmt.Errorf("manifest: create %s: %w", name, err)
	}
	f, err := fs.Create(name)
	if err != nil {
		return nil, fmt.Errorf("manifest: create %s: %w", name, err)
	}
	w := NewWriter(newRW(f, fileNum), fileNum)
	err = w.Append(SnapshotEdit(v, s))
	if err == nil {
		err = SetCurrent(fs, dirname, fileNum)
	}
	if err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// Load reads the manifest that CURRENT names in directory dirname and
// replays it (Replay). It returns the version (holding one reference), the
// state and the manifest's number. Errors are ReadCurrent's (one wrapping
// os.ErrNotExist when there is no CURRENT), Replay's, or an error wrapping
// base.ErrCorruption when the manifest's own number is not below the next
// file number it records.
//
// The loaded manifest is never appended to (its tail may be torn): the
// engine starts a new one with Create before logging any edit.
func Load(fs vfs.FS, dirname string, newRR NewRecordReader) (v *Version, s State, fileNum uint64, err error) {
	fileNum, err = ReadCurrent(fs, dirname)
	if err != nil {
		return nil, State{}, 0, err
	}
	name := fs.PathJoin(dirname, FileName(fileNum))
	f, err := fs.Open(name)
	if err != nil {
		return nil, State{}, 0, fmt.Errorf("manifest: open %s: %w", name, err)
	}
	defer f.Close()
	v, s, err = Replay(newRR(f, fileNum, name))
	if err != nil {
		return nil, State{}, 0, fmt.Errorf("%w (in %s)", err, name)
	}
	if fileNum >= s.NextFileNumber {
		return nil, State{}, 0, base.CorruptionErrorf("manifest: %s: next file number %d not above the manifest's", name, s.NextFileNumber)
	}
	return v, s, fileNum, nil
}
