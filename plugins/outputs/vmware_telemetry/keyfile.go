package vmware_telemetry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// readKeyFile reads the key file at path, or, when there is none yet,
// checks that it can be created there and returns nil: creating it is left
// to Connect, so that Init (and `config check`) writes nothing.
func readKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		key, err := telemetry.ParseKey(data)
		if err != nil {
			return nil, fmt.Errorf("key file %q: %w", path, err)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	if err := checkCreatable(path); err != nil {
		return nil, fmt.Errorf("key file %q does not exist and cannot be created: %w", path, err)
	}
	return nil, nil
}

// checkCreatable reports whether a file could be created at path (its
// missing parent directories included) without creating anything: the
// nearest existing ancestor must be a directory this process may write to.
func checkCreatable(path string) error {
	dir := filepath.Dir(filepath.Clean(path))
	for {
		fi, err := os.Stat(dir)
		switch {
		case err == nil && !fi.IsDir():
			return fmt.Errorf("%q is not a directory", dir)
		case err == nil:
			if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
				return &fs.PathError{Op: "write", Path: dir, Err: err}
			}
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return fmt.Errorf("no existing directory above %q", path)
		}
		dir = parent
	}
}
