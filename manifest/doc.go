// Package manifest is strata's version set: which tables make up the store
// at each level, the namespaces, and the few numbers recovery needs (the
// oldest WAL still needed, the next file number, the last sequence number).
//
// A VersionEdit is one change (format at the top of edit.go); a Builder
// applies edits to a Version, an immutable, reference-counted state of the
// LSM tree, checking each one; State holds the scalars. A manifest is a log
// of encoded edits, framed by the WAL's record format (the engine supplies
// a RecordWriter and a RecordReader, since this package does not import
// wal), whose first record is a snapshot of the whole version. The CURRENT
// file names the manifest in use (format at the top of current.go).
//
// # What the engine must do
//
// This package writes manifests and CURRENT durably and checks what it
// reads, but the order of operations across files is the engine's. These
// rules are what make a crash at any point recoverable (TESTPLAN F4, F5,
// F7):
//
//  1. A new table (flush or compaction output) is written and synced, and
//     the directory synced, before the edit that adds it is appended. The
//     edit is validated first, without side effects: Builder.Apply and
//     Build on the current version, State.Apply and Validate, so a bad edit
//     never reaches the log.
//  2. Writer.Append syncs the edit. Only after it returns nil does the
//     engine install the new version, Unref the old one, and delete what
//     the edit made obsolete: WALs below the new LogNumber, tables whose
//     last reference Unref reports. A table is deleted only when no version
//     (current, snapshot, iterator, compaction) holds it.
//  3. A failed Append poisons the Writer (facebook/rocksdb#6331). The engine
//     discards the version it built for the edit but deletes none of the
//     tables only that version held (the edit may be durable), starts a new
//     manifest with Create (a snapshot of the installed version), and only
//     then may retry the edit or delete those tables. If Create fails too,
//     the engine stops logging edits (the store is poisoned until reopened,
//     TESTPLAN F9) or retries Create with another file number; it never
//     appends to a poisoned or older Writer.
//  4. A manifest is rolled with Create when Writer.ShouldRoll says so. The
//     old Writer is closed and its file deleted only after Create returned
//     nil: CURRENT then durably names the new manifest, whose snapshot and
//     directory entry were made durable before CURRENT could name it
//     (syndtr/goleveldb#351).
//  5. Every file number comes from State.NextFileNumber, and an edit that
//     introduces a number records a NextFileNumber above it (flush and
//     compaction edits set NextFileNumber). At open the engine also moves
//     the next number past every file it finds in the directory, since a
//     WAL or table may have been created after the last edit.
//  6. Every edit that adds a table sets LastSeqNum to at least the table's
//     LargestSeq (Validate enforces it), so that recovery never reuses a
//     sequence number a table holds.
//  7. Tables below level 0 never split a user key (Build rejects user-key
//     overlap), so a read needs one table per level. A table moved to
//     another level is deleted and added in the same edit, with the same
//     metadata.
//  8. Open: Load (CURRENT, then Replay of the manifest it names). If CURRENT
//     is missing (errors.Is(err, os.ErrNotExist)) and the directory holds
//     manifests, tables or WALs, that is an error, never a new empty store;
//     a new store writes its first manifest and CURRENT (Create) before
//     any WAL or table. After replaying the WALs, the engine starts a new
//     manifest with Create (the loaded one is never appended to), and only
//     then deletes the manifests other than the current one and the
//     tables and WALs the version no longer needs.
//  9. A dropped namespace (an edit with DroppedNamespaces) disappears from
//     reads at once; compaction drops its keys. Namespace ids are never
//     reused (Version.NextNamespaceID only grows); ids 0 and 1 are implicit
//     and never created or dropped.
package manifest
