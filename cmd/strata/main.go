// Command strata is strata's command-line tool.
//
// Usage:
//
//	strata demo [flags]   run a stream-processor-like demo on an embedded store
//	strata scale [flags]  load a large store, kill it, reopen it, measure reads and amplification
//	strata check <dir>    verify a closed store: checksums, key order, manifest against files
//
// Run "strata <command> -h" for a command's flags.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "demo":
		err = demo(args)
	case "scale":
		err = scale(args)
	case "check":
		err = check(args)
	case "help", "-h", "--help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "strata: unknown command %q\n", cmd)
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata: %v\n", err)
		code := 1
		var e exitError
		if errors.As(err, &e) {
			code = e.code
		}
		os.Exit(code)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: strata <command> [flags]

commands:
  demo   consume a synthetic changelog in transactions that commit data and
         offsets together, get killed midway, resume, and verify the result
  scale  load many keys in a child process, kill -9 it, time the reopen,
         measure reads, write and space amplification (docs/SCALE.md)
  check  verify a closed store: every checksum, key order, the manifest
         against the files, no leftover file
`)
}
