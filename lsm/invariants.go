package lsm

import (
	"errors"
	"fmt"
	"os"

	"github.com/stratadb/strata/internal/vfs"
	"github.com/stratadb/strata/manifest"
)

// checkNewTablesLocked panics unless every table edit adds exists with the
// size the edit records: an edit must never name a file that is missing or
// still being written (tables already in the version are not checked
// again: tests damage them on purpose). Only under the invariants build
// tag. d.mu is held.
func (d *DB) checkNewTablesLocked(edit *manifest.VersionEdit) {
	// Look past filesystems that inject faults: the check is not part of
	// the workload under test.
	fs := d.fs
	for {
		u, ok := fs.(interface{ Unwrap() vfs.FS })
		if !ok {
			break
		}
		fs = u.Unwrap()
	}
	for _, nf := range edit.NewFiles {
		f := nf.Meta
		fi, err := fs.Stat(d.path(tableFileName(f.FileNum)))
		switch {
		case errors.Is(err, os.ErrNotExist):
			panic(fmt.Sprintf("lsm: invariant: new L%d table %s is missing", nf.Level, f))
		case err == nil && uint64(fi.Size()) != f.Size:
			panic(fmt.Sprintf("lsm: invariant: new L%d table %s has %d bytes", nf.Level, f, fi.Size()))
		}
	}
}
