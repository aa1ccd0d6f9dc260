package failpoint

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestHit checks that an armed failpoint kills the process at the armed hit
// when compiled in, and that Hit does nothing otherwise.
func TestHit(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") == "1" {
		Hit(GCMidDelete)
		os.Stdout.WriteString("after first hit\n")
		Hit(GCMidDelete)
		os.Stdout.WriteString("after second hit\n")
		return
	}
	seen := map[string]bool{}
	for _, n := range Names {
		if seen[n] {
			t.Fatalf("failpoint %s listed twice", n)
		}
		seen[n] = true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHit$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", EnvVar+"="+GCMidDelete+"@2")
	out, err := cmd.Output()
	switch {
	case !strings.Contains(string(out), "after first hit"):
		t.Fatalf("child output %q, %v", out, err)
	case Enabled && (err == nil || strings.Contains(string(out), "after second hit")):
		t.Fatalf("the armed failpoint did not kill the child: %q, %v", out, err)
	case !Enabled && (err != nil || !strings.Contains(string(out), "after second hit")):
		t.Fatalf("a release build stopped at a failpoint: %q, %v", out, err)
	}
}
