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

// The test's own network namespace, taken before any thread joins another
// (init runs on the main thread).
var (
	hostNetNSFD   int
	hostNetNSLink string
	hostNetNSErr  error
)

func init() {
	hostNetNSFD, hostNetNSErr = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if hostNetNSErr == nil {
		hostNetNSLink, hostNetNSErr = os.Readlink("/proc/thread-self/ns/net")
	}
}

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
	require.NoError(t, hostNetNSErr, "opening the test's own network namespace")
	own := hostNetNSLink
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
		// The thread goes back to the test's namespace before it is
		// unlocked; if it cannot, it stays locked and is discarded when
		// this goroutine ends. Either way no other goroutine (nor a child
		// process it starts) ever runs in the joined namespace.
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
		if unix.Setns(hostNetNSFD, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	require.NoError(t, <-ready, "joining the network namespace of pid %d", pid)
	t.Cleanup(func() { close(n.reqs) })
	// The process's script brings the loopback up (and adds addresses)
	// first thing: wait for that before listening or dialling there.
	pollUntil(t, 10*time.Second, func() bool {
		var up bool
		n.do(func() {
			lo, err := net.InterfaceByName("lo")
			up = err == nil && lo.Flags&net.FlagUp != 0
		})
		return up
	}, func() string { return fmt.Sprintf("the loopback of pid %d never came up", pid) })
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
	// An address the script adds may not be there yet.
	pollUntil(t, 10*time.Second, func() bool {
		n.do(func() { ln, err = net.Listen("tcp", addr) })
		return err == nil
	}, func() string { return fmt.Sprintf("listening on %s in the namespace of pid %d: %v", addr, n.pid, err) })
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
