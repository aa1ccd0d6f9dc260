package txn

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports checks that txn depends on nothing but the standard library,
// internal/base and google/btree (see DESIGN.md: imports point down only).
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/stratadb/strata/txn":           true,
		"github.com/stratadb/strata/internal/base": true,
		"github.com/google/btree":                  true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("txn depends on %s", p)
		}
	}
}
