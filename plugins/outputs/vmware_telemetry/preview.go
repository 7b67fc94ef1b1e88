package vmware_telemetry

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/influxdata/telegraf"
)

// openPreview opens the preview target: a file (appended to, created
// 0600: it holds pseudonyms, which are not for everyone) or the log.
func openPreview(path string, log telegraf.Logger) (io.WriteCloser, error) {
	if path == "" {
		return &logWriter{log: log}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("preview_file %q: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("preview_file %q: %w", path, err)
	}
	return f, nil
}

func previewTarget(path string) string {
	if path == "" {
		return "the log"
	}
	return fmt.Sprintf("%q", path)
}

// writePreview writes one batch exactly as it would be sent before
// compression, after a comment line (line protocol skips it) saying what
// the request would carry.
func (t *VMwareTelemetry) writePreview(c chunk, raw []byte, compressed int) error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# batch %s level=%s dictionary=%s instance=%s metrics=%d bytes=%d %s_bytes=%d\n",
		c.key, t.level, t.dict.Version, t.instance, c.n, len(raw), t.compressor.Encoding(), compressed)
	buf.Write(raw)
	if _, err := t.preview.Write(buf.Bytes()); err != nil {
		return err
	}
	t.stats.previewed.Incr(int64(c.n))
	return nil
}

// logWriter sends each preview batch to the log as one message.
type logWriter struct{ log telegraf.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	w.log.Infof("Preview (not sent):\n%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

func (*logWriter) Close() error { return nil }
