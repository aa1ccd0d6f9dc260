package errorfs

import "syscall"

// injectedError is the type of ErrInjected and ErrNoSpace.
type injectedError struct {
	msg   string
	errno syscall.Errno
}

func (e *injectedError) Error() string { return e.msg }

// Is makes every injected error match ErrInjected and its errno.
func (e *injectedError) Is(target error) bool {
	return target == ErrInjected || target == e.errno
}

var (
	// ErrInjected is an injected I/O error. It matches syscall.EIO with
	// errors.Is. Every error this package injects (ErrNoSpace and
	// ShortWrite included) matches ErrInjected, so a test can tell an
	// injected error from a real one with errors.Is(err, ErrInjected).
	ErrInjected error = &injectedError{msg: "errorfs: injected I/O error", errno: syscall.EIO}
	// ErrNoSpace is an injected "no space left on device". It matches
	// syscall.ENOSPC and ErrInjected with errors.Is.
	ErrNoSpace error = &injectedError{msg: "errorfs: injected no space left on device", errno: syscall.ENOSPC}
)

// ShortWrite, returned by an Injector for an OpWrite, makes File.Write
// write the first len(p)/2 bytes to the underlying file and then return
// that count with the error. For other ops it fails like any error. Err is
// the error the write fails with; nil means ErrInjected.
type ShortWrite struct {
	Err error
}

func (e ShortWrite) cause() error {
	if e.Err == nil {
		return ErrInjected
	}
	return e.Err
}

// Error implements error.
func (e ShortWrite) Error() string { return "errorfs: short write: " + e.cause().Error() }

// Unwrap returns Err, or ErrInjected if Err is nil.
func (e ShortWrite) Unwrap() error { return e.cause() }
