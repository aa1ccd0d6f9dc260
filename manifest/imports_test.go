package manifest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports checks that manifest imports only the standard library,
// internal/base and internal/vfs: it composes with wal in lsm, never here
// (DESIGN.md: imports point down only).
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	out, err := exec.Command(goTool, "list", "-f", "{{join .Imports \" \"}}", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/stratadb/strata/internal/base": true,
		"github.com/stratadb/strata/internal/vfs":  true,
	}
	for _, p := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(p, "/")
		if strings.Contains(first, ".") && !allowed[p] {
			t.Errorf("manifest imports %s", p)
		}
	}
}
