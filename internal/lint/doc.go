// Package lint holds no code, only tests that check the whole module's
// structure against DESIGN.md:
//
//   - TestForbiddenImports: imports point down only (cmd, then lsm, then
//     txn, memtable, wal, sstable and manifest, then internal/...); the
//     middle layers never import each other; golang.org/x/sys is imported
//     only by internal/vfs; the engine depends on nothing but the standard
//     library and its three required modules, which go.mod requires
//     directly and alone.
//   - TestNoCgo: the module builds with CGO_ENABLED=0 and no package of it
//     has cgo files.
//
// They run `go list` and `go build`, and skip when no go tool is found.
// Tests count: a package's tests are held to the same rules as its code.
package lint
