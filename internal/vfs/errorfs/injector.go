package errorfs

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"
)

// Injector decides whether an operation fails. MaybeError is called before
// each op through an FS, possibly from many goroutines at once; it returns
// nil to let the op run, or the error the op fails with (the op then does
// not happen, except for ShortWrite and OpClose).
type Injector interface {
	MaybeError(op Op) error
}

// InjectorFunc adapts a function to an Injector.
type InjectorFunc func(op Op) error

// MaybeError calls f(op).
func (f InjectorFunc) MaybeError(op Op) error { return f(op) }

// Always fails every op with err. Narrow it with OnKinds, PathMatch or
// When.
func Always(err error) Injector {
	return InjectorFunc(func(Op) error { return err })
}

// OnIndex fails the op with index n with err, once: the returned Injector
// fires at most one time even if used by several FSs.
func OnIndex(n int64, err error) Injector {
	var fired atomic.Bool
	return InjectorFunc(func(op Op) error {
		if op.Index == n && !fired.Swap(true) {
			return err
		}
		return nil
	})
}

// Persistent fails the op with index n, whatever its kind, and every
// later mutating op (see OpKind.Mutating), as a disk that went bad would.
// Reads after n still succeed.
func Persistent(n int64, err error) Injector {
	return InjectorFunc(func(op Op) error {
		if op.Index == n || (op.Index > n && op.Kind.Mutating()) {
			return err
		}
		return nil
	})
}

// Randomly fails each op with probability p, with err. The choice is a
// hash of seed and the op's index, so it depends on nothing else (not on
// goroutine scheduling): the same seed fails the same indexes.
func Randomly(p float64, seed int64, err error) Injector {
	return InjectorFunc(func(op Op) error {
		if unitHash(uint64(seed), uint64(op.Index)) < p {
			return err
		}
		return nil
	})
}

// unitHash maps (seed, i) to a float in [0, 1) with splitmix64.
func unitHash(seed, i uint64) float64 {
	z := seed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

// OnKinds passes ops of the given kinds to inner and lets all others run.
func OnKinds(inner Injector, kinds ...OpKind) Injector {
	var set [numOpKinds]bool
	for _, k := range kinds {
		if k < numOpKinds {
			set[k] = true
		}
	}
	return When(func(op Op) bool { return op.Kind < numOpKinds && set[op.Kind] }, inner)
}

// PathMatch passes to inner the ops whose path, or the path's last
// element, matches glob (path.Match syntax, "/" separated; OS paths are
// converted with filepath.ToSlash), and lets all others run. It panics if
// glob is malformed, as regexp.MustCompile does.
func PathMatch(glob string, inner Injector) Injector {
	if _, err := path.Match(glob, ""); err != nil {
		panic(fmt.Sprintf("errorfs: PathMatch(%q): %v", glob, err))
	}
	return When(func(op Op) bool {
		p := filepath.ToSlash(op.Path)
		full, _ := path.Match(glob, p)
		base, _ := path.Match(glob, path.Base(p))
		return full || base
	}, inner)
}

// When passes to inner the ops for which pred returns true and lets all
// others run. pred may be called concurrently.
func When(pred func(Op) bool, inner Injector) Injector {
	return InjectorFunc(func(op Op) error {
		if pred(op) {
			return inner.MaybeError(op)
		}
		return nil
	})
}

// Any asks each injector in turn and returns the first non-nil error.
// Every injector before the first that fails is consulted.
func Any(injs ...Injector) Injector {
	injs = slices.Clone(injs)
	return InjectorFunc(func(op Op) error {
		for _, inj := range injs {
			if err := inj.MaybeError(op); err != nil {
				return err
			}
		}
		return nil
	})
}

// Latency delays every op by d and fails none. Combine it with When or
// OnKinds to slow some ops, and with Any to slow and fail.
func Latency(d time.Duration) Injector {
	return InjectorFunc(func(Op) error {
		time.Sleep(d)
		return nil
	})
}
