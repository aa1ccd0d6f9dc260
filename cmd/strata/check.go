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
file is left that the store does not use.

Exit status: 0 if the store is sound, 1 if check found a problem, 2 for a
usage error, 3 if the store could not be checked (no such directory, not a
store, locked by a process that has it open).
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
		return exitError{2, errors.New("check needs one directory")}
	}
	r, err := lsm.Check(fs.Arg(0), nil)
	if r != nil {
		fmt.Print(r)
	}
	if err != nil && !errors.Is(err, lsm.ErrCorruption) {
		return exitError{3, err}
	}
	return err
}

// exitError is an error that sets the command's exit status (1 for any
// other error).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }
