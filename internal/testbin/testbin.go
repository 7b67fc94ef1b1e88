// Package testbin gives tests the built telegraf-tkgi binary.
//
// Tests that run the binary are integration tests: under `go test -short`
// (the unit loop) they skip, and `make test` builds the binary and names it
// in $TELEGRAF_TKGI_BIN so they always run there.
package testbin

import (
	"os"
	"testing"
)

// Path returns the binary named by $TELEGRAF_TKGI_BIN. Under -short the test
// is skipped; otherwise a missing binary fails it.
func Path(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the built binary: an integration test, run without -short (make test)")
	}
	bin := os.Getenv("TELEGRAF_TKGI_BIN")
	if bin == "" {
		t.Fatal("set TELEGRAF_TKGI_BIN to the built binary (make test does)")
	}
	return bin
}
