//go:build !linux

package vmware_telemetry_listener

import (
	"errors"
	"os"
)

// preallocate is not available here: a full disk shows as a failed write,
// which is cut back and the log rewritten once there is room.
func preallocate(*os.File, int64, int64) error {
	return errors.ErrUnsupported
}

// writableDir is left to the first write here: the log is created then.
func writableDir(string) error { return nil }
