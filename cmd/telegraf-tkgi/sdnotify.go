package main

import (
	"fmt"
	"net"
	"os"
)

// notifyReady tells systemd that the agent runs, when systemd started the
// process as a Type=notify service (as upstream's unit file does): without
// the message systemd would stop the process at its start timeout. Outside
// such a service NOTIFY_SOCKET is unset and nothing is sent.
func notifyReady() error {
	socket := os.Getenv("NOTIFY_SOCKET")
	if socket == "" {
		return nil
	}
	// A leading '@' names an abstract socket, which net handles as is.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notifying systemd on %s failed: %w", socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("READY=1")); err != nil {
		return fmt.Errorf("notifying systemd on %s failed: %w", socket, err)
	}
	return nil
}
