//go:build linux

package vfs

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync makes f's data durable with fdatasync(2), which skips metadata
// (such as the modification time) that is not needed to read the data back.
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
		}
		return nil
	}
}
