// Package invariants switches on the engine's expensive internal checks.
// They are compiled in only under the build tag invariants (CI runs the
// tests with it): every version installed is checked against the files on
// disk, iterators check that keys come in order, reference counts that they
// never go below zero. A failed check panics: it is a bug in strata, never
// bad input.
package invariants
