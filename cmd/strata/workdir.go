package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// workDir returns the directory a command builds its store in, and what
// removes that store at the end (nothing with keep). With dir empty it is a
// new temporary directory named after prefix. Otherwise dir must not exist
// (it is created) or be an empty directory: a command never builds in, and
// so never removes, a directory holding anything, such as a store another
// process has open, or a file. Only what the command created is removed:
// a directory it created, or the entries of an empty one it was given.
func workDir(dir, prefix string, keep bool) (string, func(), error) {
	created := false
	switch {
	case dir == "":
		d, err := os.MkdirTemp("", prefix)
		if err != nil {
			return "", nil, err
		}
		dir, created = d, true
	default:
		names, err := os.ReadDir(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(dir, 0o755); err != nil {
				return "", nil, err
			}
			created = true
		case err != nil:
			return "", nil, fmt.Errorf("-dir %s must be a new or empty directory: %w", dir, err)
		case len(names) > 0:
			return "", nil, fmt.Errorf("-dir %s is not empty; remove it or choose another directory", dir)
		}
	}
	switch {
	case keep:
		return dir, func() {}, nil
	case created:
		return dir, func() { os.RemoveAll(dir) }, nil
	}
	return dir, func() {
		names, _ := os.ReadDir(dir)
		for _, n := range names {
			os.RemoveAll(filepath.Join(dir, n.Name()))
		}
	}, nil
}
