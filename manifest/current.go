package manifest

// The CURRENT file names the manifest in use: the manifest's file name
// followed by one newline, nothing else.
//
//	+-------------------------------+------+
//	| "MANIFEST-" decimal number    | "\n" |
//	+-------------------------------+------+
//
// The number is printed with at least 6 digits (%06d: MANIFEST-000007,
// MANIFEST-1234567), is never 0, and is read back only in that canonical
// form. CURRENT is replaced atomically (SetCurrent): the new content goes to
// CURRENT.tmp, which is synced, the directory is synced, CURRENT.tmp is
// renamed over CURRENT and the directory is synced again.
//
// These constants are part of the file format and should not be changed.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/stratadb/strata/internal/base"
	"github.com/stratadb/strata/internal/vfs"
)

// These constants are part of the file format and should not be changed.
const (
	// CurrentName is the name of the pointer file in a store directory.
	CurrentName = "CURRENT"
	// currentTmpName is the temporary file a new CURRENT is written to.
	currentTmpName = "CURRENT.tmp"
	// fileNamePrefix starts every manifest's file name.
	fileNamePrefix = "MANIFEST-"
)

// maxCurrentSize bounds the CURRENT file ReadCurrent accepts: the name of
// the manifest with the largest number (20 digits) and the newline fit.
const maxCurrentSize = 64

// FileName returns the file name (no directory) of manifest fileNum:
// "MANIFEST-%06d".
func FileName(fileNum uint64) string {
	return fmt.Sprintf("%s%06d", fileNamePrefix, fileNum)
}

// ParseFileName returns the number of the manifest called name (a base
// name), and false if name is not one that FileName returns for a nonzero
// number.
func ParseFileName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, fileNamePrefix)
	if !ok || len(digits) < 6 || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n == 0 || FileName(n) != name {
		return 0, false
	}
	return n, true
}

// ParseCurrent parses the content of a CURRENT file and returns the number
// of the manifest it names. Anything but a canonical manifest name followed
// by exactly one newline is an error wrapping base.ErrCorruption: an empty
// file, a missing newline (google/leveldb#75), trailing bytes, a bad name.
func ParseCurrent(b []byte) (uint64, error) {
	switch {
	case len(b) == 0:
		return 0, base.CorruptionErrorf("manifest: CURRENT is empty")
	case len(b) > maxCurrentSize:
		return 0, base.CorruptionErrorf("manifest: CURRENT holds %d bytes, more than a manifest name", len(b))
	case b[len(b)-1] != '\n':
		return 0, base.CorruptionErrorf("manifest: CURRENT %q does not end with a newline", b)
	}
	n, ok := ParseFileName(string(b[:len(b)-1]))
	if !ok {
		return 0, base.CorruptionErrorf("manifest: CURRENT %q does not name a manifest", b)
	}
	return n, nil
}

// ReadCurrent returns the number of the manifest that the CURRENT file of
// directory dirname names. If CURRENT does not exist, the error wraps
// os.ErrNotExist (a new store, unless the directory holds data files: the
// caller must check). If CURRENT is damaged (see ParseCurrent), or names a
// manifest that does not exist, the error wraps base.ErrCorruption (and not
// os.ErrNotExist). Other I/O errors are returned wrapped. ReadCurrent may be
// called concurrently with anything but SetCurrent on the same directory.
func ReadCurrent(fs vfs.FS, dirname string) (uint64, error) {
	name := fs.PathJoin(dirname, CurrentName)
	b, err := readSmall(fs, name, maxCurrentSize)
	if err != nil {
		return 0, fmt.Errorf("manifest: read %s: %w", name, err)
	}
	n, err := ParseCurrent(b)
	if err != nil {
		return 0, fmt.Errorf("%w (in %s)", err, name)
	}
	m := fs.PathJoin(dirname, FileName(n))
	if _, err := fs.Stat(m); errors.Is(err, os.ErrNotExist) {
		return 0, base.CorruptionErrorf("manifest: %s names %s, which does not exist", name, m)
	} else if err != nil {
		return 0, fmt.Errorf("manifest: stat %s: %w", m, err)
	}
	return n, nil
}

// readSmall returns the content of the named file, or its first max+1 bytes
// if it is longer (so that a huge file costs no more than that).
func readSmall(fs vfs.FS, name string, max int) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, max+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, err
	}
	return buf[:n], nil
}

// SetCurrent points the CURRENT file of directory dirname at manifest
// fileNum, atomically and durably: when it returns nil, CURRENT names the
// manifest after any crash. The manifest must exist, hold its first record
// and be synced (Create does all this); SetCurrent checks that it exists and
// is not empty. Steps: write CURRENT.tmp and sync it; sync the directory
// (so that the manifest's and CURRENT.tmp's entries are durable before
// CURRENT can name them); rename CURRENT.tmp over CURRENT; sync the
// directory again. Until the rename reaches the disk, a crash leaves the old
// CURRENT (never an empty or partial one).
//
// On error, CURRENT names either the old manifest or the new one (which one
// is unknown if the rename happened but the last sync failed): the caller
// must keep both manifests and stop appending to the old one. SetCurrent is
// not safe for concurrent use on one directory.
func SetCurrent(fs vfs.FS, dirname string, fileNum uint64) error {
	if fileNum == 0 {
		return errors.New("manifest: SetCurrent of manifest 0")
	}
	m := fs.PathJoin(dirname, FileName(fileNum))
	if st, err := fs.Stat(m); err != nil {
		return fmt.Errorf("manifest: set CURRENT: %w", err)
	} else if st.Size() == 0 {
		return fmt.Errorf("manifest: set CURRENT: %s is empty", m)
	}
	tmp := fs.PathJoin(dirname, currentTmpName)
	if err := vfs.WriteFile(fs, tmp, []byte(FileName(fileNum)+"\n")); err != nil {
		return fmt.Errorf("manifest: set CURRENT: write %s: %w", tmp, err)
	}
	if err := vfs.SyncDir(fs, dirname); err != nil {
		return fmt.Errorf("manifest: set CURRENT: %w", err)
	}
	cur := fs.PathJoin(dirname, CurrentName)
	if err := fs.Rename(tmp, cur); err != nil {
		return fmt.Errorf("manifest: set CURRENT: %w", err)
	}
	if err := vfs.SyncDir(fs, dirname); err != nil {
		return fmt.Errorf("manifest: set CURRENT: %w", err)
	}
	return nil
}
