//go:build !linux

package vfs

import "os"

// datasync makes f's data durable. Outside Linux it is os.File.Sync (which
// uses F_FULLFSYNC on macOS).
func datasync(f *os.File) error { return f.Sync() }
