package memtable

// MaxNodeSize bounds the node arena bytes one entry takes (a node of the
// greatest height), so that a caller can reserve room for a batch before
// adding it.
const MaxNodeSize = maxNodeSize
