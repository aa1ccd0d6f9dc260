module github.com/stratadb/strata

go 1.26.0

require (
	github.com/google/btree v1.1.3
	github.com/klauspost/compress v1.20.4
	golang.org/x/sys v0.50.0
)
