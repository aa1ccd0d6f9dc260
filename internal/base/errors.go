package base

import (
	"errors"
	"fmt"
)

// ErrCorruption marks damaged on-disk data. Every error that reports damage
// wraps it, so callers test with errors.Is(err, ErrCorruption).
var ErrCorruption = errors.New("strata: corruption")

// CorruptionErrorf formats a description of damage and wraps ErrCorruption.
func CorruptionErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruption, fmt.Sprintf(format, args...))
}
