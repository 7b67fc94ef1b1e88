package vmware_telemetry

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

// A preview batch is a comment line saying what the request would carry,
// then the lines exactly as they would be sent.
func TestWritePreview(t *testing.T) {
	for _, enc := range []string{"zstd", "gzip"} {
		t.Run(enc, func(t *testing.T) {
			o := startedOutput(t, func(o *VMwareTelemetry) { o.ContentEncoding = enc })
			var out bytes.Buffer
			o.preview = nopCloser{&out}
			c := chunk{n: 2, key: "0123456789abcdef0123456789abcdef"}
			raw := []byte("m a=1i 1\nm a=2i 2\n")
			require.NoError(t, o.writePreview(c, raw, 7))
			require.Equal(t, "# batch "+c.key+" level=standard dictionary="+o.dict.Version+" instance="+o.instance+
				" metrics=2 bytes=18 "+enc+"_bytes=7\n"+string(raw), out.String())
			require.Equal(t, int64(2), o.stats.previewed.Get())
		})
	}
}

func TestOpenPreview(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name       string
		path       string
		wantTarget string
		wantErr    string
	}{
		{"the log", "", "the log", ""},
		{"a file in a new directory", filepath.Join(dir, "new", "preview.lp"), `"` + filepath.Join(dir, "new", "preview.lp") + `"`, ""},
		{"a file under a file", filepath.Join(dir, "plain", "preview.lp"), "", "preview_file"},
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "plain"), nil, 0o600))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, log := newOutput(t, "", "")
			w, err := openPreview(tt.path, log)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			defer w.Close()
			require.Equal(t, tt.wantTarget, previewTarget(tt.path))
			_, err = w.Write([]byte("# batch k\nm a=1i 1\n"))
			require.NoError(t, err)
			if tt.path == "" {
				require.Len(t, log.Messages(), 1)
				require.Equal(t, "Preview (not sent):\n# batch k\nm a=1i 1", log.Messages()[0].Text)
				return
			}
			st, err := os.Stat(tt.path)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
		})
	}
}
