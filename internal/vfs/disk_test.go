//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package vfs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlockPerDescription checks the OS half of Lock alone: flock on a
// second descriptor of a locked file fails even in the same process.
func TestFlockPerDescription(t *testing.T) {
	name := filepath.Join(t.TempDir(), "LOCK")
	f1, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Close()
	f2, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if err := osLock(f1); err != nil {
		t.Fatal(err)
	}
	if err := osLock(f2); !errors.Is(err, ErrLocked) {
		t.Fatalf("flock of a second descriptor = %v, want ErrLocked", err)
	}
	if err := osUnlock(f1); err != nil {
		t.Fatal(err)
	}
	if err := osLock(f2); err != nil {
		t.Fatalf("flock after unlock = %v", err)
	}
}

// TestLockRelativeAndAbsolute checks that two spellings of one path are
// one lock within the process.
func TestLockRelativeAndAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	l, err := Default.Lock("LOCK")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := Default.Lock(filepath.Join(dir, "LOCK")); !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock by absolute path = %v, want ErrLocked", err)
	}
}

// TestLockOtherProcess checks that a lock held here stops another process.
func TestLockOtherProcess(t *testing.T) {
	name := filepath.Join(t.TempDir(), "LOCK")
	run := func() string {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), lockChildEnv+"="+name)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return string(out)
	}
	l, err := Default.Lock(name)
	if err != nil {
		t.Fatal(err)
	}
	if out := run(); !strings.Contains(out, "lock-result: locked=true") {
		t.Fatalf("child could take a held lock:\n%s", out)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if out := run(); !strings.Contains(out, "lock-result: locked=false") {
		t.Fatalf("child could not take a free lock:\n%s", out)
	}
}
