//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package vfs

import "os"

// osLock is a no-op on platforms without flock: there Lock excludes only
// other Locks within this process.
func osLock(*os.File) error { return nil }

func osUnlock(*os.File) error { return nil }
