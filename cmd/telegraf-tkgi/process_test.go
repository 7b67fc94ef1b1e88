package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// process is a binary running in the background until its test ends; its
// stdout and stderr are collected for waits on log lines.
type process struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	log   bytes.Buffer
	done  chan struct{}
	state *os.ProcessState
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

func (p *process) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// startProcess starts bin with the environment plus env, without a default
// configuration or home folder to find.
func startProcess(t *testing.T, bin string, env []string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), append([]string{"TELEGRAF_CONFIG_PATH=/nonexistent", "HOME=" + t.TempDir()}, env...)...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	require.NoError(t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(bin), p.logText())
		}
	})
	return p
}

// waitLog waits until the log holds want at least n times.
func (p *process) waitLog(t *testing.T, want string, n int, within time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Count(p.logText(), want) >= n },
		within, 20*time.Millisecond, "waiting for %d× %q", n, want)
}

// waitExit waits for the process to end and returns how it ended.
func (p *process) waitExit(t *testing.T, within time.Duration) *os.ProcessState {
	t.Helper()
	select {
	case <-p.done:
		return p.state
	case <-time.After(within):
		require.FailNow(t, "process still running", "after %s", within)
		return nil
	}
}

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stopBy sends sig and waits (30 s at most) for the process to end; it
// returns the exit code and how long the process took.
func (p *process) stopBy(t *testing.T, sig syscall.Signal) (int, time.Duration) {
	t.Helper()
	began := time.Now()
	require.NoError(t, p.cmd.Process.Signal(sig))
	state := p.waitExit(t, 30*time.Second)
	return state.ExitCode(), time.Since(began)
}

// startAgent runs the agent on conf, with no proxy from the environment.
func startAgent(t *testing.T, conf string, env ...string) *process {
	t.Helper()
	return startProcess(t, binary, append([]string{"HTTP_PROXY=", "HTTPS_PROXY="}, env...), "--config", conf)
}
