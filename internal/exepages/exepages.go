// Package exepages gives back the pages of the running executable that
// only start-up needed.
//
// A Go binary linking Telegraf, client-go and controller-runtime runs about
// 700 package init functions before main. They are spread over the whole
// executable and the kernel maps file pages 64 KiB around each fault, so
// start-up leaves some 50 MB of the binary resident, of which the running
// agent uses a third. Those pages are clean and read-only: dropping this
// process's mapping of them loses nothing (a later use faults the page back
// in from the page cache), and the resident set then shows what the agent
// really uses.
package exepages

// Released reports what Release gave back.
type Released struct {
	// Bytes is the resident size of the dropped mappings before the drop.
	Bytes int64
	// Mappings is the number of mappings dropped.
	Mappings int
}
