package lint

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// module is the engine module's path.
const module = "github.com/stratadb/strata"

// requiredModules are the only modules the engine module may depend on
// (DESIGN.md, "Packages and the way data flows").
var requiredModules = []string{
	"github.com/google/btree",
	"github.com/klauspost/compress",
	"golang.org/x/sys",
}

// middleLayers are the packages between lsm and internal/...: each may import
// only internal/..., the standard library and the required modules.
var middleLayers = []string{"txn", "memtable", "wal", "sstable", "manifest"}

// checkedGOOS are the systems whose import graphs are checked: files for
// one system only (foo_windows.go) can break the rules on that system alone.
var checkedGOOS = []string{"linux", "darwin", "windows"}

// goTool returns the go command, or skips the test when there is none.
func goTool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool: %v", err)
	}
	return path
}

// moduleRoot returns the directory of the engine module's go.mod, found by
// walking up from the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// listedPackage holds the fields of `go list -json` that the checks use.
type listedPackage struct {
	ImportPath string
	Name       string
	ForTest    string
	Standard   bool
	Module     *struct{ Path string }
	Imports    []string
	CgoFiles   []string
}

// goList runs `go list -deps -test` over the module's packages in root, with
// env added to the environment, and returns what it lists.
func goList(t *testing.T, goPath, root string, env ...string) []listedPackage {
	t.Helper()
	cmd := exec.Command(goPath, "list", "-deps", "-test",
		"-json=ImportPath,Name,ForTest,Standard,Module,Imports,CgoFiles", "./...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.Bytes())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
}

// node is one package of the import graph.
type node struct {
	path     string
	standard bool
	module   string   // "" when the package belongs to no module
	imports  []string // imports of the package's own code
	// testImports are the further imports of its tests (in-package and
	// external), listed for the packages go list was asked about.
	testImports []string
}

// graph is an import graph, by import path.
type graph map[string]*node

// variantBase returns the import path of a package listed by go list -test,
// without the " [p.test]" suffix of a test variant.
func variantBase(importPath string) string {
	base, _, _ := strings.Cut(importPath, " [")
	return base
}

// buildGraph folds go list's test variants into one node per package.
func buildGraph(pkgs []listedPackage) graph {
	g := graph{}
	get := func(path string) *node {
		if g[path] == nil {
			g[path] = &node{path: path}
		}
		return g[path]
	}
	for _, p := range pkgs {
		base := variantBase(p.ImportPath)
		imports := make([]string, len(p.Imports))
		for i, imp := range p.Imports {
			imports[i] = variantBase(imp)
		}
		switch {
		case p.ForTest == "" && p.Name == "main" && base == p.ImportPath && strings.HasSuffix(base, ".test"):
			// The generated test main; it imports only the package under
			// test and the testing packages.
		case p.ForTest == "":
			n := get(base)
			n.standard = p.Standard
			if p.Module != nil {
				n.module = p.Module.Path
			}
			n.imports = imports
		case base == p.ForTest || base == p.ForTest+"_test":
			n := get(p.ForTest)
			for _, imp := range imports {
				if imp != p.ForTest && !slices.Contains(n.testImports, imp) {
					n.testImports = append(n.testImports, imp)
				}
			}
		default:
			// A dependency rebuilt for another package's tests: same
			// imports as its plain build.
		}
	}
	for _, n := range g {
		n.testImports = slices.DeleteFunc(n.testImports, func(imp string) bool {
			return slices.Contains(n.imports, imp)
		})
		slices.Sort(n.testImports)
	}
	return g
}

// enginePackages returns the sorted import paths of the engine module's
// packages in g.
func (g graph) enginePackages() []string {
	var paths []string
	for path := range g {
		if _, ok := engineRel(path); ok {
			paths = append(paths, path)
		}
	}
	slices.Sort(paths)
	return paths
}

// engineRel returns path relative to the engine module, and whether path is
// in it.
func engineRel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	return rel, ok
}

// short names a package in messages: relative to the engine module when it
// is in it.
func short(path string) string {
	if rel, ok := engineRel(path); ok && rel != "" {
		return rel
	}
	return path
}

// within reports whether path is dir or a package below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// layer returns the layer of DESIGN.md that the engine package rel belongs
// to: "cmd", "lsm", one of middleLayers, "internal", or "" for none.
func layer(rel string) string {
	top, _, _ := strings.Cut(rel, "/")
	switch {
	case rel == "":
		return ""
	case top == "cmd", top == "lsm", top == "internal", slices.Contains(middleLayers, top):
		return top
	}
	return ""
}

// importRule returns why the engine package fromRel may not import the
// package to, or "" when it may. It covers the layering and golang.org/x/sys;
// modules outside the required ones are checkModules' business.
func importRule(fromRel, to string) string {
	if within(to, "golang.org/x/sys") && !within(fromRel, "internal/vfs") {
		return "golang.org/x/sys may be imported only by internal/vfs and its subpackages"
	}
	toRel, ok := engineRel(to)
	if !ok {
		return ""
	}
	from, target := layer(fromRel), layer(toRel)
	switch {
	case from == "internal" && target != "internal":
		return "internal/... must not import " + orRoot(target) + " (imports point down only)"
	case slices.Contains(middleLayers, from) && target != "internal" && target != from:
		return from + " may import only internal/..., the standard library and the required modules"
	case from == "lsm" && target == "cmd":
		return "lsm must not import cmd (imports point down only)"
	case from == "" || target == "":
		return "the import involves a package in no layer of DESIGN.md"
	}
	return ""
}

// orRoot names a layer in a message.
func orRoot(layer string) string {
	if layer == "" {
		return "a package in no layer"
	}
	return layer
}

// checkLayers returns a message for every import of an engine package (or
// of its tests) that breaks importRule, and for every engine package that
// belongs to no layer.
func checkLayers(g graph) []string {
	var bad []string
	for _, path := range g.enginePackages() {
		n := g[path]
		rel, _ := engineRel(path)
		if layer(rel) == "" {
			bad = append(bad, fmt.Sprintf("%s: package is in no layer of DESIGN.md (cmd, lsm, %s, internal); place it there or teach internal/lint about it",
				short(path), strings.Join(middleLayers, ", ")))
		}
		for _, imp := range n.imports {
			if why := importRule(rel, imp); why != "" {
				bad = append(bad, fmt.Sprintf("%s -> %s: %s", short(path), short(imp), why))
			}
		}
		for _, imp := range n.testImports {
			if why := importRule(rel, imp); why != "" {
				bad = append(bad, fmt.Sprintf("%s (tests) -> %s: %s", short(path), short(imp), why))
			}
		}
	}
	return bad
}

// allowedModule reports whether a package of module m may be in the engine's
// import graph.
func allowedModule(m string) bool {
	return m == module || slices.Contains(requiredModules, m)
}

// checkModules walks the import graph breadth first from the engine's
// packages (and their tests) and returns a message, naming the shortest
// import chain, for every package reached that is neither in the standard
// library nor in the engine module or one of the required modules.
func checkModules(g graph) []string {
	type edge struct {
		from string
		test bool
	}
	parent := map[string]edge{}
	queue := g.enginePackages()
	for _, p := range queue {
		parent[p] = edge{}
	}
	visit := func(from, to string, test bool) {
		if _, seen := parent[to]; !seen && g[to] != nil {
			parent[to] = edge{from, test}
			queue = append(queue, to)
		}
	}
	var bad []string
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		n := g[path]
		if !n.standard && !allowedModule(n.module) {
			chain := []string{short(path)}
			for e := parent[path]; e.from != ""; e = parent[e.from] {
				if e.test {
					chain = append(chain, short(e.from)+" (tests)")
				} else {
					chain = append(chain, short(e.from))
				}
			}
			slices.Reverse(chain)
			bad = append(bad, fmt.Sprintf("%s: %s is in module %q, outside the standard library and the required modules %v",
				strings.Join(chain, " -> "), path, n.module, requiredModules))
			continue
		}
		for _, imp := range n.imports {
			visit(path, imp, false)
		}
		for _, imp := range n.testImports {
			visit(path, imp, true)
		}
	}
	return bad
}

// TestForbiddenImports checks the import rules of DESIGN.md on the module's
// import graph, tests included, for each of checkedGOOS.
func TestForbiddenImports(t *testing.T) {
	goPath := goTool(t)
	root := moduleRoot(t)
	for _, goos := range checkedGOOS {
		t.Run(goos, func(t *testing.T) {
			g := buildGraph(goList(t, goPath, root, "GOOS="+goos, "GOARCH=amd64", "CGO_ENABLED=0"))
			if len(g.enginePackages()) == 0 {
				t.Fatalf("go list found no package of %s in %s", module, root)
			}
			for _, msg := range checkLayers(g) {
				t.Error(msg)
			}
			for _, msg := range checkModules(g) {
				t.Error(msg)
			}
		})
	}
}

// TestGoModRequires checks that go.mod requires exactly the required
// modules, each directly.
func TestGoModRequires(t *testing.T) {
	root := moduleRoot(t)
	text, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range checkGoMod(string(text)) {
		t.Error("go.mod: " + msg)
	}
}

// requirement is one require directive of a go.mod file.
type requirement struct {
	path, version string
	indirect      bool
	line          int
}

// parseGoMod returns the module path and the requirements of a go.mod file.
// It understands the subset of the syntax that require directives use:
// single-line and parenthesized forms, quoted paths, // comments.
func parseGoMod(text string) (modulePath string, reqs []requirement, err error) {
	inRequire := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for line := 1; sc.Scan(); line++ {
		code, comment, _ := strings.Cut(sc.Text(), "//")
		fields := strings.Fields(code)
		indirect := slices.Contains(strings.Fields(comment), "indirect")
		switch {
		case len(fields) == 0:
		case inRequire && fields[0] == ")":
			inRequire = false
		case inRequire:
			r, err := parseRequirement(fields, indirect, line)
			if err != nil {
				return "", nil, err
			}
			reqs = append(reqs, r)
		case fields[0] == "module" && len(fields) == 2:
			modulePath = unquote(fields[1])
		case fields[0] == "require" && len(fields) == 2 && fields[1] == "(":
			inRequire = true
		case fields[0] == "require":
			r, err := parseRequirement(fields[1:], indirect, line)
			if err != nil {
				return "", nil, err
			}
			reqs = append(reqs, r)
		}
	}
	if inRequire {
		return "", nil, errors.New("unterminated require block")
	}
	return modulePath, reqs, sc.Err()
}

// parseRequirement parses the "path version" fields of a requirement.
func parseRequirement(fields []string, indirect bool, line int) (requirement, error) {
	if len(fields) != 2 {
		return requirement{}, fmt.Errorf("line %d: malformed requirement %q", line, strings.Join(fields, " "))
	}
	return requirement{path: unquote(fields[0]), version: fields[1], indirect: indirect, line: line}, nil
}

// unquote strips the quotes of a quoted go.mod string.
func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

// checkGoMod returns a message for each way the go.mod text breaks the rule
// that the engine module requires the required modules, directly, and
// nothing else.
func checkGoMod(text string) []string {
	modulePath, reqs, err := parseGoMod(text)
	if err != nil {
		return []string{err.Error()}
	}
	var bad []string
	if modulePath != module {
		bad = append(bad, fmt.Sprintf("module path is %q, want %q", modulePath, module))
	}
	seen := map[string]bool{}
	for _, r := range reqs {
		switch {
		case !slices.Contains(requiredModules, r.path):
			bad = append(bad, fmt.Sprintf("line %d requires %s %s: the engine module may require only %v", r.line, r.path, r.version, requiredModules))
		case seen[r.path]:
			bad = append(bad, fmt.Sprintf("line %d requires %s a second time", r.line, r.path))
		case r.indirect:
			bad = append(bad, fmt.Sprintf("line %d requires %s as indirect; the engine must import it directly", r.line, r.path))
		}
		seen[r.path] = true
	}
	for _, m := range requiredModules {
		if !seen[m] {
			bad = append(bad, "does not require "+m)
		}
	}
	return bad
}

// TestNoCgo checks that the module builds without cgo and that none of its
// packages has cgo files (which CGO_ENABLED=0 would silently leave out).
func TestNoCgo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the whole module")
	}
	goPath := goTool(t)
	root := moduleRoot(t)
	cmd := exec.Command(goPath, "build", "./...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("CGO_ENABLED=0 go build ./...: %v\n%s", err, out)
	}
	for _, p := range goList(t, goPath, root, "CGO_ENABLED=1") {
		if _, ok := engineRel(variantBase(p.ImportPath)); ok && len(p.CgoFiles) > 0 {
			t.Errorf("%s has cgo files %v; the engine is pure Go", short(p.ImportPath), p.CgoFiles)
		}
	}
}

// The tests below check the checks themselves on made-up inputs, since the
// real tree is meant to hold no violation.

func TestImportRule(t *testing.T) {
	for _, tc := range []struct {
		from, to string
		ok       bool
	}{
		{"txn", module + "/internal/base", true},
		{"txn", "github.com/google/btree", true},
		{"txn", "sort", true},
		{"txn", module + "/wal", false},
		{"txn", module + "/lsm", false},
		{"memtable", module + "/sstable", false},
		{"sstable/block", module + "/sstable", true},
		{"sstable", module + "/manifest", false},
		{"manifest", module + "/cmd/strata", false},
		{"internal/base", module + "/internal/vfs", true},
		{"internal/compress", module + "/lsm", false},
		{"internal/vfs/errorfs", module + "/wal", false},
		{"internal/vfs", "golang.org/x/sys/unix", true},
		{"internal/vfs/errorfs", "golang.org/x/sys/windows", true},
		{"internal/vfsutil", "golang.org/x/sys/unix", false},
		{"wal", "golang.org/x/sys/unix", false},
		{"lsm", "golang.org/x/sys/unix", false},
		{"lsm", module + "/txn", true},
		{"lsm", module + "/internal/vfs", true},
		{"lsm", module + "/cmd/strata", false},
		{"cmd/strata", module + "/lsm", true},
		{"cmd/strata", module + "/internal/compress", true},
		{"txn", module + "/util", false},
		{"util", module + "/internal/base", false},
	} {
		why := importRule(tc.from, tc.to)
		if (why == "") != tc.ok {
			t.Errorf("importRule(%q, %q) = %q, want allowed=%v", tc.from, tc.to, why, tc.ok)
		}
	}
}

// testGraph builds a graph from "path: import import ..." lines; a "+" marks
// a test import, "std:" a standard package, "mod=M:" a package of module M.
func testGraph(lines ...string) graph {
	g := graph{}
	for _, l := range lines {
		head, rest, _ := strings.Cut(l, ":")
		n := &node{path: head}
		if kind, path, ok := strings.Cut(head, " "); ok {
			n.path = path
			switch {
			case kind == "std":
				n.standard = true
			case strings.HasPrefix(kind, "mod="):
				n.module = strings.TrimPrefix(kind, "mod=")
			}
		} else {
			n.module = module
		}
		for _, imp := range strings.Fields(rest) {
			if test, ok := strings.CutPrefix(imp, "+"); ok {
				n.testImports = append(n.testImports, test)
			} else {
				n.imports = append(n.imports, imp)
			}
		}
		g[n.path] = n
	}
	return g
}

func TestCheckLayersMessages(t *testing.T) {
	g := testGraph(
		module+"/txn: "+module+"/internal/base +"+module+"/lsm",
		module+"/wal: "+module+"/txn",
		module+"/lsm: "+module+"/txn "+module+"/wal",
		module+"/internal/base:",
		module+"/tools:",
	)
	want := []string{
		"tools: package is in no layer",
		"txn (tests) -> lsm: txn may import only",
		"wal -> txn: wal may import only",
	}
	got := checkLayers(g)
	if len(got) != len(want) {
		t.Fatalf("checkLayers = %q, want %d messages", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("message %d = %q, want it to start with %q", i, got[i], want[i])
		}
	}
}

func TestCheckModulesChain(t *testing.T) {
	g := testGraph(
		module+"/lsm: "+module+"/internal/compress fmt",
		module+"/internal/compress: github.com/klauspost/compress/zstd +github.com/test/only",
		"mod=github.com/klauspost/compress github.com/klauspost/compress/zstd: github.com/evil/dep",
		"mod=github.com/evil/dep github.com/evil/dep: fmt",
		"mod=github.com/test/only github.com/test/only:",
		"std fmt:",
	)
	got := checkModules(g)
	want := []string{
		"internal/compress (tests) -> github.com/test/only: ",
		"internal/compress -> github.com/klauspost/compress/zstd -> github.com/evil/dep: ",
	}
	slices.Sort(got)
	if len(got) != len(want) {
		t.Fatalf("checkModules = %q, want %d messages", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("message %d = %q, want it to start with %q", i, got[i], want[i])
		}
	}
}

func TestBuildGraphVariants(t *testing.T) {
	p := module + "/wal"
	engine := &struct{ Path string }{module}
	g := buildGraph([]listedPackage{
		{ImportPath: p, Name: "wal", Module: engine, Imports: []string{"io"}},
		{ImportPath: p + " [" + p + ".test]", Name: "wal", ForTest: p, Module: engine, Imports: []string{"io", "testing"}},
		{ImportPath: p + "_test [" + p + ".test]", Name: "wal_test", ForTest: p, Module: engine,
			Imports: []string{p + " [" + p + ".test]", "bytes"}},
		{ImportPath: module + "/internal/base [" + p + ".test]", Name: "base", ForTest: p, Module: engine, Imports: []string{"os"}},
		{ImportPath: p + ".test", Name: "main", Module: engine, Imports: []string{p + " [" + p + ".test]", "os"}},
		{ImportPath: "io", Name: "io", Standard: true},
	})
	n := g[p]
	if n == nil || !slices.Equal(n.imports, []string{"io"}) || !slices.Equal(n.testImports, []string{"bytes", "testing"}) {
		t.Fatalf("wal node = %+v", n)
	}
	if g[p+".test"] != nil || g[module+"/internal/base"] != nil {
		t.Errorf("test main or another package's test variant became a node: %v", slices.Sorted(maps.Keys(g)))
	}
}

func TestCheckGoMod(t *testing.T) {
	good := "module " + module + "\n\ngo 1.26\n\nrequire (\n" +
		"\tgithub.com/google/btree v1.1.3\n\tgithub.com/klauspost/compress v1.20.4 // a comment\n" +
		"\t\"golang.org/x/sys\" v0.50.0\n)\n"
	for _, tc := range []struct {
		name, text string
		want       []string // substrings, one per message
	}{
		{"good", good, nil},
		{"single-line requires", "module " + module + "\nrequire github.com/google/btree v1.1.3\n" +
			"require github.com/klauspost/compress v1.20.4\nrequire golang.org/x/sys v0.50.0\n", nil},
		{"extra", good + "require github.com/pkg/errors v0.9.1\n", []string{"requires github.com/pkg/errors"}},
		{"extra indirect", good + "require github.com/a/b v1.0.0 // indirect\n", []string{"requires github.com/a/b"}},
		{"indirect", strings.Replace(good, "v1.1.3", "v1.1.3 // indirect", 1), []string{"as indirect"}},
		{"missing", strings.Replace(good, "\t\"golang.org/x/sys\" v0.50.0\n", "", 1), []string{"does not require golang.org/x/sys"}},
		{"twice", good + "require golang.org/x/sys v0.51.0\n", []string{"a second time"}},
		{"wrong module", strings.Replace(good, module, "example.com/x", 1), []string{"module path"}},
		{"unterminated", "module " + module + "\nrequire (\n", []string{"unterminated"}},
		{"malformed", "module " + module + "\nrequire golang.org/x/sys\n", []string{"malformed"}},
	} {
		got := checkGoMod(tc.text)
		if len(got) != len(tc.want) {
			t.Errorf("%s: checkGoMod = %q, want %d messages", tc.name, got, len(tc.want))
			continue
		}
		for i := range got {
			if !strings.Contains(got[i], tc.want[i]) {
				t.Errorf("%s: message %q does not mention %q", tc.name, got[i], tc.want[i])
			}
		}
	}
}
