package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/stratadb/strata/lsm"
)

// check verifies a closed store: every checksum, key order, the manifest
// against the files, and leftover files (see lsm.Check).
func check(args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: strata check <dir>

Verifies the closed store in dir without changing it: the manifest CURRENT
names, every block checksum, the key order within and across tables, each
table against the manifest, the WAL records still to replay, and that no
file is left that the store does not use. Exits 1 if it finds a problem.
`)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("check needs one directory")
	}
	r, err := lsm.Check(fs.Arg(0), nil)
	if r != nil {
		fmt.Print(r)
	}
	return err
}
