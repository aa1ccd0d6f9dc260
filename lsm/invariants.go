package lsm

import (
	"errors"
	"fmt"
	"os"

	"github.com/stratadb/strata/manifest"
)

// checkVersionLocked panics unless every table of v exists with the size
// the manifest records: a version must never name a file that is missing
// or still being written. Only under the invariants build tag. d.mu is
// held. Other Stat errors (injected by tests) are ignored.
func (d *DB) checkVersionLocked(v *manifest.Version) {
	for level := range manifest.NumLevels {
		for _, f := range v.Files(level) {
			fi, err := d.fs.Stat(d.path(tableFileName(f.FileNum)))
			switch {
			case errors.Is(err, os.ErrNotExist):
				panic(fmt.Sprintf("lsm: invariant: L%d table %s is missing", level, f))
			case err == nil && uint64(fi.Size()) != f.Size:
				panic(fmt.Sprintf("lsm: invariant: L%d table %s has %d bytes", level, f, fi.Size()))
			}
		}
	}
}
