package vmware_telemetry

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// The raw size that is expected to compress to the limit: 4:1 before
// anything is seen, then 80% of the ratio seen, never below 1:1 or above
// 50:1.
func TestRatioRawFor(t *testing.T) {
	tests := []struct {
		name            string
		raw, compressed int
		want            int
	}{
		{"nothing seen", 0, 0, 4000},
		{"10:1 seen", 10000, 1000, 8000},
		{"incompressible", 1000, 1100, 1000},
		{"extreme ratio capped", 1000000, 100, 50000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r ratio
			r.add(tt.raw, tt.compressed)
			require.Equal(t, tt.want, r.rawFor(1000))
		})
	}
}

// compress gives a body the server decodes back to the lines, reuses the
// body buffer, and adds what it saw to the ratio.
func TestCompress(t *testing.T) {
	decode := map[string]func([]byte) ([]byte, error){
		"zstd": func(b []byte) ([]byte, error) {
			d, err := zstd.NewReader(nil)
			if err != nil {
				return nil, err
			}
			defer d.Close()
			return d.DecodeAll(b, nil)
		},
		"gzip": func(b []byte) ([]byte, error) {
			r, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(r)
		},
	}
	raw := bytes.Repeat([]byte("kube_telemetry_nodes,cluster_uid=a90edc65ea16 total=5000i 1777863721000000000\n"), 200)
	for enc, dec := range decode {
		t.Run(enc, func(t *testing.T) {
			o := startedOutput(t, func(o *VMwareTelemetry) { o.ContentEncoding = enc })
			body, err := o.compress(raw)
			require.NoError(t, err)
			got, err := dec(body)
			require.NoError(t, err)
			require.Equal(t, raw, got)
			require.Equal(t, ratio{raw: int64(len(raw)), compressed: int64(len(body))}, o.seen)

			first := len(body)
			again, err := o.compress(raw[:len(raw)/2])
			require.NoError(t, err)
			require.Same(t, &body[:1][0], &again[:1][0], "the body buffer is reused")
			require.Equal(t, ratio{raw: int64(len(raw) + len(raw)/2), compressed: int64(first + len(again))}, o.seen)
		})
	}
}
