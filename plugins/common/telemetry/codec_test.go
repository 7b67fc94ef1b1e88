package telemetry

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

func sampleMetrics() []telegraf.Metric {
	return []telegraf.Metric{
		metric.New("kube_telemetry_pods", map[string]string{"cluster_uid": "u1"},
			map[string]any{"total": int64(12), "running": int64(10)}, ts),
		metric.New("kube_telemetry_node", map[string]string{"cluster_uid": "u1", "node": "n 1,=x", "role": "worker"},
			map[string]any{"ready": true, "memory_capacity_bytes": uint64(1 << 40), "ratio": 0.25, "note": "a \"quoted\"\nline"}, ts.Add(time.Nanosecond)),
	}
}

func encodeAll(t testing.TB, metrics []telegraf.Metric) []byte {
	e := NewEncoder()
	for _, m := range metrics {
		require.NoError(t, e.AppendMetric(m))
	}
	return bytes.Clone(e.Bytes())
}

func TestRoundTrip(t *testing.T) {
	in := sampleMetrics()
	raw := encodeAll(t, in)
	require.Equal(t, 2, bytes.Count(raw, []byte("\n")))

	dec, err := NewDecoder(1<<20, 1<<16)
	require.NoError(t, err)
	defer dec.Close()
	for _, enc := range []string{EncodingZstd, EncodingGzip, EncodingIdentity, ""} {
		t.Run("encoding="+enc, func(t *testing.T) {
			c, err := NewCompressor(enc)
			require.NoError(t, err)
			var body []byte
			// Twice: the compressor is reused.
			for range 2 {
				body, err = c.Compress(body, raw)
				require.NoError(t, err)
			}
			got, n, err := dec.Decode(body, c.Encoding(), time.Now())
			require.NoError(t, err)
			require.Equal(t, int64(len(raw)), n)
			testutil.RequireMetricsEqual(t, in, got)
		})
	}
}

func TestEncoderSkipsBadLines(t *testing.T) {
	e := NewEncoder()
	require.NoError(t, e.AppendMetric(sampleMetrics()[0]))
	good := e.Len()
	bad := []*View{
		{Name: "m", Fields: []telegraf.Field{{Key: "f", Value: math.NaN()}}, Time: ts},
		{Name: "m", Fields: []telegraf.Field{{Key: "f", Value: []int{1}}}, Time: ts},
		{Name: "m", Tags: []telegraf.Tag{{Key: "t", Value: "bad\x01"}}, Fields: []telegraf.Field{{Key: "f", Value: int64(1)}}, Time: ts},
		{Name: "m", Tags: []telegraf.Tag{{Key: "b", Value: "1"}, {Key: "a", Value: "2"}}, Fields: []telegraf.Field{{Key: "f", Value: int64(1)}}, Time: ts},
		{Name: "m", Time: ts},
		{Name: "", Fields: []telegraf.Field{{Key: "f", Value: int64(1)}}, Time: ts},
	}
	for i, v := range bad {
		require.Error(t, e.AppendView(v), "view %d", i)
		require.Equal(t, good, e.Len(), "view %d left bytes behind", i)
	}
	require.NoError(t, e.AppendMetric(sampleMetrics()[1]))
	dec, err := NewDecoder(1<<20, 0)
	require.NoError(t, err)
	got, err := dec.Parse(e.Bytes(), time.Now())
	require.NoError(t, err)
	testutil.RequireMetricsEqual(t, sampleMetrics(), got)

	e.Reset()
	require.Zero(t, e.Len())
}

func zstdBytes(t testing.TB, data []byte) []byte {
	z, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	return z.EncodeAll(data, nil)
}

func gzipBytes(t testing.TB, data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, err := w.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return b.Bytes()
}

func TestDecompressErrors(t *testing.T) {
	const limit = 1 << 20
	dec, err := NewDecoder(limit, 0)
	require.NoError(t, err)
	defer dec.Close()
	line := []byte("kube_telemetry_pods total=1i\n")
	exact := bytes.Repeat([]byte("x"), limit)
	over := bytes.Repeat([]byte("x"), limit+1)

	tests := []struct {
		name, encoding string
		body           []byte
		want           error
	}{
		{"unknown encoding", "br", line, ErrUnsupportedEncoding},
		{"zstd truncated", EncodingZstd, zstdBytes(t, line)[:10], ErrCorrupt},
		{"zstd garbage", EncodingZstd, []byte("not zstd at all"), ErrCorrupt},
		{"gzip truncated", EncodingGzip, gzipBytes(t, bytes.Repeat(line, 100))[:30], ErrCorrupt},
		{"gzip garbage", EncodingGzip, []byte("not gzip at all"), ErrCorrupt},
		{"zstd over limit", EncodingZstd, zstdBytes(t, over), ErrTooLarge},
		{"gzip over limit", EncodingGzip, gzipBytes(t, over), ErrTooLarge},
		{"identity over limit", EncodingIdentity, over, ErrTooLarge},
		{"zstd at limit", EncodingZstd, zstdBytes(t, exact), nil},
		{"gzip at limit", EncodingGzip, gzipBytes(t, exact), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := dec.Decompress(tt.body, tt.encoding)
			if tt.want == nil {
				require.NoError(t, err)
				require.Len(t, out, limit)
				return
			}
			require.ErrorIs(t, err, tt.want)
		})
	}
}

// A bomb: 1 GiB of zeros compresses to about a megabyte (zstd) or a few
// megabytes (gzip); decoding it with a 1 MiB limit must fail fast with
// ErrTooLarge and allocate a small multiple of the limit, never the GiB.
func TestDecompressBomb(t *testing.T) {
	const limit = 1 << 20
	dec, err := NewDecoder(limit, 0)
	require.NoError(t, err)
	defer dec.Close()

	zeros := make([]byte, 64<<20)
	bombs := map[string][]byte{}
	{
		// zstd: concatenate frames of 64 MiB zeros to 1 GiB without a
		// declared total size.
		one := zstdBytes(t, zeros)
		bombs[EncodingZstd] = bytes.Repeat(one, 16)
		// gzip: a multi-member stream is one gzip body too.
		bombs[EncodingGzip] = bytes.Repeat(gzipBytes(t, zeros), 16)
	}
	zeros = nil
	for enc, body := range bombs {
		t.Run(enc, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := dec.Decompress(body, enc)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, ErrTooLarge)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s bomb of %d bytes: refused in %s, %d bytes allocated", enc, len(body), elapsed, allocated)
			require.Less(t, allocated, uint64(32*limit), "memory must stay bounded by the limit")
		})
	}
}

func TestParseErrors(t *testing.T) {
	dec, err := NewDecoder(1<<20, 64)
	require.NoError(t, err)
	defer dec.Close()
	tests := []struct {
		name, in, want string
	}{
		{"no fields", "m,t=1\n", "malformed line protocol"},
		{"bad field", "m f=notanumber\n", "malformed line protocol"},
		{"bad time", "m f=1i abc\n", "malformed line protocol"},
		{"invalid utf8", "m f=\"\xff\"\n", "invalid UTF-8 at byte 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dec.Parse([]byte(tt.in), time.Now())
			require.ErrorContains(t, err, tt.want)
			require.True(t, errors.Is(err, ErrMalformed))
		})
	}
	for _, in := range []string{"m f=\"" + strings.Repeat("x", 80) + "\"\n", "m f=1i\nm f=\"" + strings.Repeat("x", 80) + "\""} {
		_, err := dec.Parse([]byte(in), time.Now())
		require.ErrorIs(t, err, ErrLineTooLong)
		require.ErrorContains(t, err, "longer than 64 bytes")
	}
	// Empty lines and comments are fine; a line without time gets now.
	now := time.Unix(42, 0)
	got, err := dec.Parse([]byte("\n# comment\nm f=1i\n\n"), now)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, now, got[0].Time())
}

func TestNewDecoderErrors(t *testing.T) {
	_, err := NewDecoder(0, 0)
	require.ErrorContains(t, err, "must be positive")
	_, err = NewDecoder(1, -1)
	require.ErrorContains(t, err, "must not be negative")
	// Tiny limits still work (the zstd window is clamped to its minimum).
	dec, err := NewDecoder(16, 0)
	require.NoError(t, err)
	defer dec.Close()
	_, err = dec.Decompress(zstdBytes(t, bytes.Repeat([]byte("x"), 17)), EncodingZstd)
	require.ErrorIs(t, err, ErrTooLarge)
}

func TestNewCompressorUnknown(t *testing.T) {
	_, err := NewCompressor("br")
	require.ErrorIs(t, err, ErrUnsupportedEncoding)
	require.ErrorContains(t, err, `use "zstd", "gzip" or "identity"`)
}

// FuzzDecode: whatever the body and encoding, Decode returns metrics or an
// error of ours, never panics, never exceeds its limit; what it returns
// encodes again.
func FuzzDecode(f *testing.F) {
	raw := encodeAll(f, sampleMetrics())
	f.Add(raw, EncodingIdentity)
	f.Add(zstdBytes(f, raw), EncodingZstd)
	f.Add(gzipBytes(f, raw), EncodingGzip)
	f.Add([]byte("m,t=a f=1i,g=\"x\" 1\n"), "")
	f.Add([]byte("\xff"), EncodingZstd)
	dec, err := NewDecoder(1<<16, 1<<12)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte, encoding string) {
		metrics, n, err := dec.Decode(body, encoding, time.Unix(0, 0))
		require.LessOrEqual(t, n, int64(1<<16))
		if err != nil {
			require.True(t, errors.Is(err, ErrUnsupportedEncoding) || errors.Is(err, ErrTooLarge) ||
				errors.Is(err, ErrCorrupt) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrLineTooLong), "unexpected error %v", err)
			return
		}
		e := NewEncoder()
		for _, m := range metrics {
			_ = e.AppendMetric(m) // may refuse (e.g. NaN): must not panic
		}
	})
}
