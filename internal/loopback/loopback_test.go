package loopback

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWaitPort(t *testing.T) {
	port, err := FreePort()
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	require.Error(t, WaitPort(addr, 100*time.Millisecond), "nothing listens yet")

	l, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, WaitPort(addr, time.Second))
}
