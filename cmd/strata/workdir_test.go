package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Regression tests for bug 25 (docs/RELIABILITY.md): "strata demo -dir D"
// removed D with everything in it at the end, even files it did not create
// or a store another process had open, and "-dir F" with F a regular file
// (demo and scale) removed F.

// TestWorkDirNeverTakesUsedPaths checks that a command builds its store
// only in a new or empty directory, and removes only what it created.
func TestWorkDirNeverTakesUsedPaths(t *testing.T) {
	base := t.TempDir()
	used := filepath.Join(base, "used")
	must(t, os.Mkdir(used, 0o755))
	notes := filepath.Join(used, "notes.txt")
	must(t, os.WriteFile(notes, []byte("not the demo's"), 0o644))
	file := filepath.Join(base, "precious.txt")
	must(t, os.WriteFile(file, []byte("precious"), 0o644))
	for _, dir := range []string{used, file} {
		if _, _, err := workDir(dir, "x-", false); err == nil {
			t.Errorf("workDir(%s) accepted a path that holds something", dir)
		}
	}
	for _, p := range []string{notes, file} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s is gone: %v", p, err)
		}
	}

	// A new directory is created, and removed at the end.
	fresh := filepath.Join(base, "fresh")
	dir, cleanup, err := workDir(fresh, "x-", false)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "000001.log"), nil, 0o644))
	cleanup()
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("the directory workDir created is still there: %v", err)
	}

	// An empty directory given is kept; what the command put in it goes.
	empty := filepath.Join(base, "empty")
	must(t, os.Mkdir(empty, 0o755))
	_, cleanup, err = workDir(empty, "x-", false)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(empty, "000001.log"), nil, 0o644))
	cleanup()
	if names, err := os.ReadDir(empty); err != nil || len(names) != 0 {
		t.Errorf("the empty directory given: %v, %v; want it kept, empty", names, err)
	}

	// No -dir: a temporary directory, removed at the end unless kept.
	for _, keep := range []bool{false, true} {
		dir, cleanup, err := workDir("", "strata-workdir-test-", keep)
		must(t, err)
		cleanup()
		_, err = os.Stat(dir)
		if keep != (err == nil) {
			t.Errorf("keep=%v: the temporary directory after cleanup: %v", keep, err)
		}
		os.RemoveAll(dir)
	}
}

// TestDemoRejectsBadFlags checks that flags the demo cannot run with are
// refused before anything starts (-batch 0 looped for ever, -keys 0
// divided by zero) and that a stray argument is not ignored.
func TestDemoRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-batch", "0"}, {"-batch", "-3"}, {"-keys", "0"}, {"-keys", "-1"},
		{"-partitions", "0"}, {"-records", "0"}, {"-kill-at", "1.5"}, {"/some/dir"},
	} {
		dir := filepath.Join(t.TempDir(), "s")
		err := demo(append([]string{"-dir", dir}, args...))
		if err == nil || !strings.HasPrefix(err.Error(), "demo: ") {
			t.Errorf("demo %v: %v, want a flag error", args, err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("demo %v created its directory before refusing: %v", args, err)
		}
	}
}

// TestCheckHelp checks that "strata check -h" is not an error (it exited
// 1, the code of a damaged store).
func TestCheckHelp(t *testing.T) {
	if err := check([]string{"-h"}); err != nil {
		t.Fatalf("check -h: %v", err)
	}
}

// TestCheckExitCodes checks that check tells a damaged store (1) from a
// usage error (2) and a store it could not check (3).
func TestCheckExitCodes(t *testing.T) {
	code := func(err error) int {
		var e exitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &e):
			return e.code
		}
		return 1
	}
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want int
	}{
		{nil, 2},
		{[]string{dir}, 3}, // not a store
		{[]string{filepath.Join(dir, "missing")}, 3}, // no such directory
		{[]string{filepath.Join(dir, "a"), "b"}, 2},  // two directories
	} {
		if got := code(check(c.args)); got != c.want {
			t.Errorf("check %v: exit %d, want %d", c.args, got, c.want)
		}
	}
	// A damaged store: a CURRENT naming no manifest.
	must(t, os.WriteFile(filepath.Join(dir, "CURRENT"), []byte("MANIFEST-000009\n"), 0o644))
	if got := code(check([]string{dir})); got != 1 {
		t.Errorf("check of a damaged store: exit %d, want 1", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
