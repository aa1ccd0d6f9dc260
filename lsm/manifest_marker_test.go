package lsm

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratadb/strata/manifest"
	"github.com/stratadb/strata/wal"
)

// Regression tests for bugs 23 and 24 (docs/RELIABILITY.md), found by a
// review of the manifest, the options and the CLI; each failed every run
// before its fix.

// TestManifestLastEditDamageDetected (bug 23): a cleanly closed store
// whose manifest's last record (a namespace creation, synced long ago) was
// damaged reopened without error, as if the damage were a torn tail: the
// namespace was forgotten, its id given to the next namespace created, and
// that namespace then showed the first one's committed data. The manifest
// now ends with a sync marker at Close, as the WAL does, so the damage is
// ErrCorruption.
func TestManifestLastEditDamageDetected(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	orders, err := db.Namespace("orders")
	if err != nil {
		t.Fatal(err)
	}
	if err := orders.Set([]byte("k"), []byte("orders-value")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Damage the last byte of the creation of "orders" (synced when
	// Namespace returned), the manifest's last edit.
	damageLastManifestEdit(t, dir)

	db, err = Open(dir, nil)
	if err != nil {
		if errors.Is(err, ErrCorruption) {
			return // the damage was reported: what the guarantee asks
		}
		t.Fatal(err)
	}
	defer db.Close()
	t.Logf("namespaces after reopen: %v", db.Namespaces())
	other, err := db.Namespace("window-7")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := other.Get([]byte("k")); err == nil {
		t.Errorf("damage to the manifest's last synced record was silently dropped: "+
			"new namespace %q (a fresh keyspace) holds %q, committed to %q before the reopen", "window-7", v, "orders")
	}
	if !strings.Contains(strings.Join(db.Namespaces(), ","), "orders") {
		t.Errorf("namespace %q, created durably, is gone after the reopen (no error)", "orders")
	}
}

// damageLastManifestEdit flips the last byte of the last edit of the
// store's one manifest: the byte before the sync marker that Close
// appends, where there is one.
func damageLastManifestEdit(t *testing.T, dir string) {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	if len(names) != 1 {
		t.Fatalf("manifests: %v", names)
	}
	b, err := os.ReadFile(names[0])
	if err != nil {
		t.Fatal(err)
	}
	num, _ := manifest.ParseFileName(filepath.Base(names[0]))
	r := wal.NewReader(bytes.NewReader(b), num, names[0], true)
	var end int64
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(rec) > 0 {
			end = r.Offset()
		}
	}
	b[end-1] ^= 0xff
	if err := os.WriteFile(names[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestManifestLastEditDamageKeepsDrop (bug 23): the same damage to a
// DropNamespace edit brought the dropped namespace and its data back.
func TestManifestLastEditDamageKeepsDrop(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := db.Namespace("window-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Set([]byte("k"), []byte("expired")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopen so that the manifest is [snapshot with window-1, drop].
	if db, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.DropNamespace("window-1"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	damageLastManifestEdit(t, dir)
	db, err = Open(dir, nil)
	if err != nil {
		if errors.Is(err, ErrCorruption) {
			return
		}
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Namespaces(); len(got) > 0 {
		w, _ := db.Namespace("window-1")
		v, _ := w.Get([]byte("k"))
		t.Errorf("namespace dropped durably is back after the damage, with no error: %v, k=%q", got, v)
	}
}

// TestOptionErrorsNameTheOption (bug 24): every invalid option was
// rejected, but five options shared one message that did not say which was
// wrong or its value, and BloomBitsPerKey was reported under the sstable's
// name for it. Each error must name the option and its value.
func TestOptionErrorsNameTheOption(t *testing.T) {
	for _, c := range []struct {
		o    Options
		name string
	}{
		{Options{LevelBaseBytes: -1}, "LevelBaseBytes"},
		{Options{TargetFileSize: -1}, "TargetFileSize"},
		{Options{BlockCacheSize: -1}, "BlockCacheSize"},
		{Options{DelayedWriteRate: -1}, "DelayedWriteRate"},
		{Options{MaxManifestFileSize: -1}, "MaxManifestFileSize"},
		{Options{BloomBitsPerKey: 5000}, "BloomBitsPerKey"},
	} {
		o := c.o.withDefaults()
		err := o.validate()
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		msg := err.Error()
		others := 0
		for _, n := range []string{"LevelBaseBytes", "TargetFileSize", "BlockCacheSize", "DelayedWriteRate", "MaxManifestFileSize"} {
			if n != c.name && strings.Contains(msg, n) {
				others++
			}
		}
		if !strings.Contains(msg, c.name) || !strings.Contains(msg, "-1") && c.name != "BloomBitsPerKey" || others > 0 {
			t.Errorf("invalid %s: the error %q does not name it alone with its value", c.name, msg)
		}
	}
}
