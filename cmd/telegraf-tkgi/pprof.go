package main

import (
	"log"
	"net/http"
	_ "net/http/pprof" //nolint:gosec // served only when --pprof-addr is given
	"time"
)

func startPprof(addr string) {
	go func() {
		log.Printf("I! Serving pprof on http://%s/debug/pprof", addr)
		server := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second}
		if err := server.ListenAndServe(); err != nil {
			log.Printf("E! Serving pprof on %s failed: %v", addr, err)
		}
	}()
}
