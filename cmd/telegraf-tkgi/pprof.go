package main

import (
	"log"
	"net/http"
	_ "net/http/pprof" //nolint:gosec // served only when --pprof-addr is given
	"time"
)

// startPprof serves Go's pprof on addr; the channel receives the error that
// ends the server (a taken port, say), so the agent can stop as upstream
// does instead of running on without the profiler the operator asked for.
func startPprof(addr string) <-chan error {
	errs := make(chan error, 1)
	go func() {
		log.Printf("I! Serving pprof on http://%s/debug/pprof", addr)
		server := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second}
		errs <- server.ListenAndServe()
	}()
	return errs
}
