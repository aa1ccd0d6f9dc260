package lsm_test

import (
	"fmt"
	"log"
	"os"

	"github.com/stratadb/strata/lsm"
)

// A stream processor commits the state it derived from a batch of changelog
// records together with the offset of the last record. After a crash it
// resumes from CommittedOffset: the data and the offset always agree.
func Example() {
	dir, err := os.MkdirTemp("", "strata-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := lsm.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	t := db.Begin(nil)
	t.Set([]byte("user/42/clicks"), []byte("17"))
	t.SetOffset("clicks-0", 1234) // the offset this state reflects
	if err := t.Commit(); err != nil {
		log.Fatal(err)
	}
	db.Close()

	// Reopen, as after a crash: resume after the committed offset.
	db, err = lsm.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	off, err := db.CommittedOffset("clicks-0")
	if err != nil {
		log.Fatal(err)
	}
	v, _ := db.Get([]byte("user/42/clicks"))
	fmt.Printf("resume after offset %d with clicks=%s\n", off, v)
	// Output: resume after offset 1234 with clicks=17
}

// A transaction reads its own writes; other readers see them only at
// ReadUncommitted until the commit.
func ExampleTxn() {
	db, err := lsm.Open("", &lsm.Options{InMemory: true})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	t := db.Begin(nil)
	t.Set([]byte("k"), []byte("v"))

	own, _ := t.Get([]byte("k"))
	_, errCommitted := db.Get([]byte("k"))
	dirty, _ := db.Reader(lsm.ReadUncommitted).Get([]byte("k"))
	fmt.Printf("own=%s committed=%v uncommitted=%s\n", own, errCommitted, dirty)

	t.Commit()
	v, _ := db.Get([]byte("k"))
	fmt.Printf("after commit: %s\n", v)
	// Output:
	// own=v committed=lsm: not found uncommitted=v
	// after commit: v
}

// Iterators are point-in-time views; All adapts one to a range loop.
func ExampleIterator_All() {
	db, _ := lsm.Open("", &lsm.Options{InMemory: true})
	defer db.Close()
	for _, k := range []string{"b", "a", "c"} {
		db.Set([]byte(k), []byte("value of "+k))
	}
	it, _ := db.NewIterator(&lsm.IterOptions{LowerBound: []byte("a"), UpperBound: []byte("c")})
	defer it.Close()
	for k, v := range it.All() {
		fmt.Printf("%s: %s\n", k, v)
	}
	// Output:
	// a: value of a
	// b: value of b
}

// A windowed store keeps one namespace per time segment: a commit spans
// the segments it writes and the offset, and an expired segment is dropped
// at once, in constant time.
func ExampleDB_Namespace() {
	db, err := lsm.Open("", &lsm.Options{InMemory: true})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	monday, _ := db.Namespace("clicks@2026-11-23")
	tuesday, _ := db.Namespace("clicks@2026-11-24")
	err = db.Update(func(t *lsm.Txn) error {
		t.In(monday).Set([]byte("user/42"), []byte("3"))
		t.In(tuesday).Set([]byte("user/42"), []byte("5"))
		return t.SetOffset("clicks-0", 99)
	})
	if err != nil {
		log.Fatal(err)
	}
	v, _ := tuesday.Get([]byte("user/42"))
	fmt.Printf("tuesday: %s\n", v)

	if err := db.DropNamespace("clicks@2026-11-23"); err != nil {
		log.Fatal(err)
	}
	_, err = monday.Get([]byte("user/42"))
	fmt.Println("monday:", err)
	fmt.Println("namespaces:", db.Namespaces())
	// Output:
	// tuesday: 5
	// monday: lsm: namespace dropped
	// namespaces: [clicks@2026-11-24]
}
