//go:build !strata_failpoints

package failpoint

// Enabled tells whether failpoints are compiled in.
const Enabled = false

// Hit marks that the process reached failpoint name. Without the
// strata_failpoints build tag it does nothing.
func Hit(name string) {}
