package sstable

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports checks that sstable depends on nothing but the standard
// library, internal/base, internal/compress, internal/vfs and what they
// bring (DESIGN.md: imports point down only).
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	allowed := []string{
		"github.com/stratadb/strata/sstable",
		"github.com/stratadb/strata/internal/base",
		"github.com/stratadb/strata/internal/compress",
		"github.com/stratadb/strata/internal/vfs",
		"github.com/klauspost/compress",
		"golang.org/x/sys", // through internal/vfs only
	}
	for _, p := range strings.Fields(string(out)) {
		ok := false
		for _, a := range allowed {
			ok = ok || p == a || strings.HasPrefix(p, a+"/")
		}
		if !ok || p == "github.com/stratadb/strata/internal/vfs/errorfs" {
			t.Errorf("sstable depends on %s", p)
		}
	}
}
