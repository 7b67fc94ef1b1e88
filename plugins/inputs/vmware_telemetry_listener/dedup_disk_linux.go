package vmware_telemetry_listener

import (
	"errors"
	"os"
	"syscall"
)

// fallocKeepSize is FALLOC_FL_KEEP_SIZE: allocate blocks past the end of
// the file without changing its size.
const fallocKeepSize = 0x1

// preallocate reserves n bytes of disk at off so writes there cannot fail
// for lack of space; errors.ErrUnsupported when the filesystem cannot.
func preallocate(f *os.File, off, n int64) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) {
		for {
			ferr = syscall.Fallocate(int(fd), fallocKeepSize, off, n)
			if !errors.Is(ferr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if errors.Is(ferr, syscall.EOPNOTSUPP) {
		return errors.ErrUnsupported
	}
	return ferr
}

// writableDir fails if the process cannot create files in dir, without
// creating one: startup must write nothing (`--test`, `config check`).
func writableDir(dir string) error {
	const wOK = 0x2 // W_OK
	if err := syscall.Access(dir, wOK); err != nil {
		return &os.PathError{Op: "access", Path: dir, Err: err}
	}
	return nil
}
