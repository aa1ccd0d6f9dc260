package vfs

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"slices"
)

// CrashCloneConfig says what survives in a MemFS.CrashClone. The zero value
// keeps exactly the synced state (a strict power cut).
//
// The model assumes "powersafe overwrite" (as SQLite calls it): a power cut
// may lose, tear or garble the bytes written since the last sync, but never
// damages bytes already durable, even those that share a disk block with
// the new ones. So a clone always holds every synced byte that the file
// still holds unchanged: a block torn or trashed keeps its synced bytes
// (for an appended file, the whole synced prefix), and only bytes whose
// value differs from the synced one (or lies beyond the synced length) are
// torn away or replaced. A byte rewritten with its synced value counts as
// unchanged. Storage without this property (some disks and filesystems
// tear whole sectors on a cut) is outside the model.
type CrashCloneConfig struct {
	// UnsyncedPct is the chance, in percent (0..100), that each unsynced
	// change survives: each changed block of each file, a file's unsynced
	// shrink, and each group of unsynced directory-entry changes. 0 keeps
	// only synced state; 100 keeps everything (an exact copy when TornPct
	// and TrashPct are 0). The default value is 0.
	UnsyncedPct int
	// TornPct is the chance, in percent, that a surviving unsynced block is
	// torn: only a prefix of random length (possibly empty) of its changed
	// bytes reaches the clone, counted from the block's first changed byte;
	// the bytes before it and the synced bytes after the cut stay. The
	// default value is 0.
	TornPct int
	// TrashPct is the chance, in percent, that a surviving unsynced block is
	// trashed: each of its changed bytes is replaced by a random byte, while
	// its unchanged (synced) bytes stay. It is drawn before TornPct. The
	// default value is 0.
	TrashPct int
	// BlockSize is the unit of file data that survives or not. The default
	// value is 4096.
	BlockSize int
	// Rand drives every random choice, so a seeded generator replays a
	// clone exactly. The default value is a generator seeded with 0.
	Rand *rand.Rand
}

// DefaultCrashBlockSize is the default CrashCloneConfig.BlockSize.
const DefaultCrashBlockSize = 4096

func (c CrashCloneConfig) withDefaults() CrashCloneConfig {
	if c.BlockSize <= 0 {
		c.BlockSize = DefaultCrashBlockSize
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(0, 0))
	}
	return c
}

// CrashClone returns an independent MemFS holding what a disk could hold
// after a power cut now: the synced bytes of every file and the synced
// entries of every directory, plus the random share of unsynced changes
// that cfg selects. Everything in the clone counts as synced. Locks and open
// handles are not carried over. CrashClone may run concurrently with any
// use of m; writes racing with it may or may not be seen.
//
// Directory-entry changes are decided in groups, so that a rename is never
// half done: two changes are in one group when they involve the same file
// or directory (a rename touches the old and new names, a replaced file
// the name it was replaced at). A group survives whole or not at all.
func (m *MemFS) CrashClone(cfg CrashCloneConfig) *MemFS {
	c := &crashCloner{
		cfg:    cfg.withDefaults(),
		parent: make(map[*memNode]*memNode),
		keep:   make(map[*memNode]bool),
		clones: make(map[*memNode]*memNode),
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c.decideEntries(m.mu.root)
	root := c.clone(m.mu.root)
	return newMemFS(root)
}

// DropUnsynced returns a clone of m holding only its synced state: the
// CrashClone of a zero CrashCloneConfig.
func (m *MemFS) DropUnsynced() *MemFS {
	return m.CrashClone(CrashCloneConfig{})
}

// crashCloner holds the state of one CrashClone. Random draws happen in a
// fixed order (directories and names walked sorted) so a seed replays.
type crashCloner struct {
	cfg CrashCloneConfig
	// parent is a union-find forest over nodes touched by entry changes.
	parent map[*memNode]*memNode
	// keep maps a group's root to whether its changes survive.
	keep map[*memNode]bool
	// clones maps an original node to its clone.
	clones map[*memNode]*memNode
}

// roll reports true with probability pct percent.
func (c *crashCloner) roll(pct int) bool {
	switch {
	case pct <= 0:
		return false
	case pct >= 100:
		return true
	}
	return c.cfg.Rand.IntN(100) < pct
}

func (c *crashCloner) find(n *memNode) *memNode {
	for {
		p, ok := c.parent[n]
		if !ok || p == n {
			return n
		}
		n = p
	}
}

func (c *crashCloner) union(a, b *memNode) {
	if a == nil || b == nil {
		return
	}
	if ra, rb := c.find(a), c.find(b); ra != rb {
		c.parent[ra] = rb
	}
}

// groupOf returns the group of the change from old to cur at one name.
func (c *crashCloner) groupOf(old, cur *memNode) *memNode {
	if old != nil {
		return c.find(old)
	}
	return c.find(cur)
}

// allNames returns the sorted names d has now or had at its last sync.
func allNames(d *memNode) []string {
	names := slices.Collect(maps.Keys(d.children))
	for name := range d.syncedChildren {
		if _, ok := d.children[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// decideEntries groups the unsynced entry changes of every directory
// reachable from root, now or as synced, and decides each group.
func (c *crashCloner) decideEntries(root *memNode) {
	type change struct{ old, cur *memNode }
	var changes []change
	seen := make(map[*memNode]bool)
	var visit func(d *memNode)
	visit = func(d *memNode) {
		seen[d] = true
		for _, name := range allNames(d) {
			old, cur := d.syncedChildren[name], d.children[name]
			if old != cur {
				changes = append(changes, change{old, cur})
				c.union(old, cur)
			}
			for _, x := range [2]*memNode{old, cur} {
				if x != nil && x.isDir && !seen[x] {
					visit(x)
				}
			}
		}
	}
	visit(root)
	for _, ch := range changes {
		g := c.groupOf(ch.old, ch.cur)
		if _, ok := c.keep[g]; !ok {
			c.keep[g] = c.roll(c.cfg.UnsyncedPct)
		}
	}
}

// entry returns the node at name in d as the clone should have it.
func (c *crashCloner) entry(d *memNode, name string) *memNode {
	old, cur := d.syncedChildren[name], d.children[name]
	if old == cur || c.keep[c.groupOf(old, cur)] {
		return cur
	}
	return old
}

// clone returns the clone of n, made once per node: a file reached by two
// names stays one file. A directory reached a second time (possible only
// when independent groups combine oddly) is dropped there, so the clone
// is always a tree.
func (c *crashCloner) clone(n *memNode) *memNode {
	if x, ok := c.clones[n]; ok {
		if n.isDir {
			return nil
		}
		return x
	}
	if !n.isDir {
		x := c.cloneFile(n)
		c.clones[n] = x
		return x
	}
	x := newMemDir()
	x.mu.modTime = n.modTime()
	c.clones[n] = x
	for _, name := range allNames(n) {
		if e := c.entry(n, name); e != nil {
			if ex := c.clone(e); ex != nil {
				x.children[name] = ex
			}
		}
	}
	x.syncedChildren = maps.Clone(x.children)
	return x
}

func (c *crashCloner) cloneFile(n *memNode) *memNode {
	n.mu.RLock()
	data := c.crashData(n.mu.synced, n.mu.data)
	mod := n.mu.modTime
	n.mu.RUnlock()
	x := newMemFile()
	x.mu.data = data
	x.mu.synced = data[:len(data):len(data)]
	x.mu.shared = true
	x.mu.modTime = mod
	return x
}

// crashData returns the bytes of a file whose synced bytes are old and
// current bytes are cur, after a crash.
func (c *crashCloner) crashData(old, cur []byte) []byte {
	res := append([]byte{}, old...)
	if len(cur) < len(res) && c.roll(c.cfg.UnsyncedPct) {
		res = res[:len(cur)]
	}
	bs := c.cfg.BlockSize
	end := max(len(old), len(cur))
	for lo := 0; lo < end; lo += bs {
		hi := min(lo+bs, end)
		curBlk := cur[min(lo, len(cur)):min(hi, len(cur))]
		oldBlk := old[min(lo, len(old)):min(hi, len(old))]
		if len(curBlk) == 0 || bytes.Equal(curBlk, oldBlk) {
			continue
		}
		if c.roll(c.cfg.UnsyncedPct) {
			res = writeAtGrow(res, c.damage(curBlk, oldBlk), lo)
		}
	}
	return res
}

// damage applies TrashPct and TornPct to a surviving block whose current
// bytes are blk and synced bytes old (shorter than blk, or empty, where the
// file has grown). Only bytes that differ from old are damaged.
func (c *crashCloner) damage(blk, old []byte) []byte {
	d := firstChange(blk, old)
	if d == len(blk) {
		return blk // the block only shrank: no byte of it changed
	}
	if c.roll(c.cfg.TrashPct) {
		trash := bytes.Clone(blk)
		for i := d; i < len(trash); i++ {
			if i >= len(old) || blk[i] != old[i] {
				trash[i] = byte(c.cfg.Rand.Uint32())
			}
		}
		return trash
	}
	if c.roll(c.cfg.TornPct) {
		return blk[:d+c.cfg.Rand.IntN(len(blk)-d)]
	}
	return blk
}

// firstChange returns the index of the first byte of blk that differs from
// old or lies beyond it, or len(blk) if there is none.
func firstChange(blk, old []byte) int {
	for i, b := range blk {
		if i >= len(old) || b != old[i] {
			return i
		}
	}
	return len(blk)
}

// writeAtGrow writes p at off in b, zero-filling any gap, and returns b.
func writeAtGrow(b, p []byte, off int) []byte {
	if end := off + len(p); end > len(b) {
		b = append(b, make([]byte, end-len(b))...)
	}
	copy(b[off:], p)
	return b
}
