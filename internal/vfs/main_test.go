package vfs

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

// lockChildEnv names the lock file a re-executed test binary tries to
// lock (see TestLockOtherProcess).
const lockChildEnv = "STRATA_VFS_LOCK_CHILD"

func TestMain(m *testing.M) {
	if name := os.Getenv(lockChildEnv); name != "" {
		l, err := Default.Lock(name)
		if err == nil {
			l.Close()
		}
		fmt.Printf("lock-result: locked=%v\n", errors.Is(err, ErrLocked))
		os.Exit(0)
	}
	os.Exit(m.Run())
}
