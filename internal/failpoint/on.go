//go:build strata_failpoints

package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Enabled tells whether failpoints are compiled in.
const Enabled = true

var armed struct {
	once sync.Once
	mu   sync.Mutex
	name string
	left int
}

// arm reads EnvVar once.
func arm() {
	v := os.Getenv(EnvVar)
	if v == "" {
		return
	}
	name, n, _ := strings.Cut(v, "@")
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 {
		count = 1
	}
	armed.name, armed.left = name, count
}

// Hit marks that the process reached failpoint name: if it is the armed
// one and this is the armed hit, the process kills itself with SIGKILL.
func Hit(name string) {
	armed.once.Do(arm)
	if armed.name != name {
		return
	}
	armed.mu.Lock()
	armed.left--
	fire := armed.left == 0
	armed.mu.Unlock()
	if !fire {
		return
	}
	fmt.Fprintf(os.Stderr, "failpoint: %s fired, killing the process\n", name)
	p, err := os.FindProcess(os.Getpid())
	if err == nil {
		p.Kill()
	}
	select {} // SIGKILL arrives; nothing after the failpoint runs
}
