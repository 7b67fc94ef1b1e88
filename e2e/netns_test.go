package e2e_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The shipped-pair test runs each process in its own network and mount
// namespaces, so the shipped files' fixed ports (8443, 9273, 8080) and
// absolute paths (/etc/..., /var/lib/..., /var/run/secrets/...) are used
// as they are. The test reaches into a namespace from an OS thread that
// joined it: sockets stay in the namespace they were created in.

// netns is the network namespace of a running process.
type netns struct {
	pid  int
	reqs chan func()
}

// joinNetNS starts a thread inside pid's network namespace; its dial and
// listen create their sockets there. The thread ends with the test.
func joinNetNS(t *testing.T, pid int) *netns {
	t.Helper()
	// unshare(1) creates the namespace just after it starts: wait until
	// the process is no longer in ours.
	own, err := os.Readlink("/proc/self/ns/net")
	require.NoError(t, err)
	deadline := time.Now().Add(10 * time.Second)
	for {
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		require.NoError(t, err, "process %d is gone", pid)
		if theirs != own {
			break
		}
		require.True(t, time.Now().Before(deadline), "process %d never left the test's network namespace", pid)
		time.Sleep(10 * time.Millisecond)
	}
	n := &netns{pid: pid, reqs: make(chan func())}
	ready := make(chan error, 1)
	go func() {
		// Never unlocked: the thread is discarded when this goroutine ends.
		runtime.LockOSThread()
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
		}
		ready <- err
		if err != nil {
			return
		}
		for fn := range n.reqs {
			fn()
		}
	}()
	require.NoError(t, <-ready, "joining the network namespace of pid %d", pid)
	t.Cleanup(func() { close(n.reqs) })
	return n
}

func (n *netns) do(fn func()) {
	done := make(chan struct{})
	n.reqs <- func() { fn(); close(done) }
	<-done
}

func (n *netns) listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	n.do(func() { ln, err = net.Listen("tcp", addr) })
	require.NoError(t, err, "listening on %s in the namespace of pid %d", addr, n.pid)
	t.Cleanup(func() { ln.Close() })
	return ln
}

func (n *netns) dial(addr string) (net.Conn, error) {
	var c net.Conn
	var err error
	n.do(func() { c, err = net.DialTimeout("tcp", addr, 5*time.Second) })
	return c, err
}

// relay forwards every connection accepted on ln to what dial returns.
func relay(ln net.Listener, dial func() (net.Conn, error)) {
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer client.Close()
				server, err := dial()
				if err != nil {
					return
				}
				defer server.Close()
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = io.Copy(server, client)
					if tc, ok := server.(*net.TCPConn); ok {
						_ = tc.CloseWrite()
					}
				}()
				_, _ = io.Copy(client, server)
				if tc, ok := client.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				wg.Wait()
			}()
		}
	}()
}

func requireRoot(t *testing.T) {
	t.Helper()
	require.Zero(t, os.Geteuid(), "this test gives each process its own mount and network namespaces "+
		"(unshare, bind mounts): run it as root, as make test does in the CI container")
}
