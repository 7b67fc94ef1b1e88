package telemetry

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

var allEncodings = []string{EncodingZstd, EncodingGzip, EncodingIdentity, ""}

func TestDecodeRoundTrip(t *testing.T) {
	in := sampleMetrics()
	raw := encodeAll(t, in)
	require.Equal(t, 2, bytes.Count(raw, []byte("\n")))
	dec, err := NewDecoder(1<<20, 1<<16)
	require.NoError(t, err)
	for _, enc := range allEncodings {
		t.Run("encoding="+enc, func(t *testing.T) {
			c, err := NewCompressor(enc)
			require.NoError(t, err)
			var body []byte
			// Twice: the compressor is reused, the decoders come back from
			// the pool.
			for range 2 {
				body, err = c.Compress(body, raw)
				require.NoError(t, err)
				got, n, err := dec.Decode(body, c.Encoding(), time.Now())
				require.NoError(t, err)
				require.Equal(t, int64(len(raw)), n)
				testutil.RequireMetricsEqual(t, in, got)
			}
		})
	}
}

// TestDecode is the decoder's specification: what it accepts, and the
// error (and its wording) for everything it refuses.
func TestDecode(t *testing.T) {
	const limit, maxLine = 1 << 20, 64
	dec, err := NewDecoder(limit, maxLine)
	require.NoError(t, err)
	now := time.Unix(42, 0)
	m := func(tags map[string]string, fields map[string]any, tm time.Time) telegraf.Metric {
		return metric.New("m", tags, fields, tm)
	}
	line := []byte("kube_telemetry_pods total=1i\n")
	lines := bytes.Repeat(line, limit/len(line)+1) // just over the limit
	exact := bytes.Repeat([]byte("m f=1i\n"), limit/7)
	long := "m f=\"" + strings.Repeat("x", 80) + "\"\n"
	z := compress(t, EncodingZstd, bytes.Repeat(line, 100))
	g := compress(t, EncodingGzip, bytes.Repeat(line, 100))

	tests := []struct {
		name, encoding string
		body           []byte
		want           []telegraf.Metric // when wantErr is nil
		wantN          int               // metrics, when want is nil
		wantErr        error
		msg            string
	}{
		{name: "empty", body: nil},
		{name: "empty lines and comments", body: []byte("\n\n# comment\n")},
		{name: "line without time gets now", body: []byte("\n# comment\nm f=1i\n\n"), want: []telegraf.Metric{m(nil, map[string]any{"f": int64(1)}, now)}},
		{name: "last line without newline", body: []byte("m f=1i"), want: []telegraf.Metric{m(nil, map[string]any{"f": int64(1)}, now)}},
		{name: "CRLF", body: []byte("m f=1i\r\nm f=2i\r\n"), want: []telegraf.Metric{
			m(nil, map[string]any{"f": int64(1)}, now), m(nil, map[string]any{"f": int64(2)}, now)}},
		{name: "escapes", body: []byte("m,t=a\\ b\\,c f=\"q\\\"uote\" 1\n"), want: []telegraf.Metric{
			m(map[string]string{"t": "a b,c"}, map[string]any{"f": `q"uote`}, time.Unix(0, 1))}},
		{name: "types", body: []byte("m,t=a g=2.5,h=\"x y\",b=true,u=1u 7\n"), want: []telegraf.Metric{
			m(map[string]string{"t": "a"}, map[string]any{"g": 2.5, "h": "x y", "b": true, "u": uint64(1)}, time.Unix(0, 7))}},
		{name: "at the limit, zstd", encoding: EncodingZstd, body: compress(t, EncodingZstd, exact), wantN: limit / 7},
		{name: "at the limit, gzip", encoding: EncodingGzip, body: compress(t, EncodingGzip, exact), wantN: limit / 7},
		{name: "at the limit, identity", encoding: EncodingIdentity, body: exact, wantN: limit / 7},

		{name: "unknown encoding", encoding: "br", body: line, wantErr: ErrUnsupportedEncoding, msg: `content encoding "br": unsupported content encoding; use "zstd", "gzip" or "identity"`},
		{name: "zstd truncated", encoding: EncodingZstd, body: z[:len(z)/2], wantErr: ErrCorrupt, msg: "zstd"},
		{name: "zstd garbage", encoding: EncodingZstd, body: []byte("not zstd at all"), wantErr: ErrCorrupt, msg: "zstd"},
		{name: "gzip truncated", encoding: EncodingGzip, body: g[:len(g)/2], wantErr: ErrCorrupt, msg: "gzip"},
		{name: "gzip garbage", encoding: EncodingGzip, body: []byte("not gzip at all"), wantErr: ErrCorrupt, msg: "gzip"},
		{name: "zstd over limit", encoding: EncodingZstd, body: compress(t, EncodingZstd, lines), wantErr: ErrTooLarge, msg: "zstd"},
		{name: "gzip over limit", encoding: EncodingGzip, body: compress(t, EncodingGzip, lines), wantErr: ErrTooLarge, msg: "gzip"},
		{name: "identity over limit", encoding: EncodingIdentity, body: lines, wantErr: ErrTooLarge, msg: "identity"},
		{name: "long line", body: []byte(long), wantErr: ErrMalformed, msg: "line 1 longer than 64 bytes"},
		{name: "long second line", body: []byte("m f=1i\n" + long), wantErr: ErrMalformed, msg: "line 2 longer than 64 bytes"},
		{name: "long last line without newline", body: []byte("m f=1i\n" + strings.TrimSuffix(long, "\n")), wantErr: ErrMalformed, msg: "line 2 longer"},
		{name: "invalid UTF-8", body: []byte("m f=1i\nm f=\"\xff\"\n"), wantErr: ErrMalformed, msg: "invalid UTF-8 in line 2 at byte 5"},
		{name: "bad field value", body: []byte("m f=1i\nm f=notanumber\n"), wantErr: ErrMalformed, msg: "malformed line protocol"},
		{name: "no fields", body: []byte("m,t=1\n"), wantErr: ErrMalformed, msg: "malformed line protocol"},
		{name: "bad time", body: []byte("m f=1i abc\n"), wantErr: ErrMalformed, msg: "malformed line protocol"},
		{name: "broken line between good ones", body: []byte("m f=1i\nbroken line\nm f=3i\n"), wantErr: ErrMalformed},
		// The size limit wins over a bad line early in the body, so the
		// answer does not depend on where the first bad line is.
		{name: "malformed and over limit", encoding: EncodingZstd, body: compress(t, EncodingZstd, append([]byte("bad\n"), lines...)), wantErr: ErrTooLarge},
		{name: "long line and over limit", encoding: EncodingZstd, body: compress(t, EncodingZstd, make([]byte, 2*limit)), wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := dec.Decode(tt.body, tt.encoding, now)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.ErrorContains(t, err, tt.msg)
				require.Nil(t, got)
				require.LessOrEqual(t, n, int64(limit)+maxLine+1)
				return
			}
			require.NoError(t, err)
			if tt.encoding == "" {
				require.Equal(t, int64(len(tt.body)), n)
			}
			if tt.want != nil {
				testutil.RequireMetricsEqual(t, tt.want, got)
				return
			}
			require.Len(t, got, tt.wantN)
		})
	}
}

func TestNewDecoderLimits(t *testing.T) {
	_, err := NewDecoder(0, 1)
	require.ErrorContains(t, err, "must be positive")
	_, err = NewDecoder(10, 0)
	require.ErrorContains(t, err, "line size limit 0")
	_, err = NewDecoder(10, 11)
	require.ErrorContains(t, err, "at most the decompressed size limit")

	// Tiny limits still work: the zstd window is clamped to its minimum.
	dec, err := NewDecoder(16, 16)
	require.NoError(t, err)
	_, _, err = dec.Decode(compress(t, EncodingZstd, bytes.Repeat([]byte("m f=1i\n"), 3)), EncodingZstd, time.Now())
	require.ErrorIs(t, err, ErrTooLarge)
}

// A bomb of zeros costs the decoder a few megabytes whatever it expands
// to: it never holds the decompressed body. A bomb of valid lines costs
// the metrics parsed until the limit is met: what a legitimate body of
// that size costs. Under -short the bombs expand to 16 MiB instead of
// 1 GiB; the decoder reads no further than the limit either way.
func TestDecodeBombBoundedMemory(t *testing.T) {
	const limit = 8 << 20
	dec, err := NewDecoder(limit, 64<<10)
	require.NoError(t, err)
	chunkSize, chunks := 64<<20, 16
	if testing.Short() {
		chunkSize, chunks = 16<<20, 1
	}

	chunk := make([]byte, chunkSize)
	lineChunk := bytes.Repeat([]byte("kube_telemetry_pods,cluster_uid=0123456789abcdef total=1i 1\n"), chunkSize/68)
	var zeroZ, linesZ, zeroG bytes.Buffer
	for _, c := range []struct {
		buf  *bytes.Buffer
		data []byte
		gz   bool
	}{{&zeroZ, chunk, false}, {&linesZ, lineChunk, false}, {&zeroG, chunk, true}} {
		var w io.WriteCloser
		if c.gz {
			w = gzip.NewWriter(c.buf)
		} else {
			zw, err := zstd.NewWriter(c.buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
			require.NoError(t, err)
			w = zw
		}
		for range chunks {
			_, err := w.Write(c.data)
			require.NoError(t, err)
		}
		require.NoError(t, w.Close())
	}
	chunk, lineChunk = nil, nil

	for _, tc := range []struct {
		name, encoding string
		body           []byte
		maxHeap        uint64
	}{
		{"zstd zeros", EncodingZstd, zeroZ.Bytes(), 16 << 20},
		// about 250 bytes per parsed metric of 68 bytes of line protocol
		{"zstd lines", EncodingZstd, linesZ.Bytes(), 6 * limit},
		{"gzip zeros", EncodingGzip, zeroG.Bytes(), 16 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, n, err := dec.Decode(tc.body, tc.encoding, time.Now())
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, ErrTooLarge)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: %d-byte body refused after %d decompressed bytes in %s, %.1f MiB allocated",
				tc.name, len(tc.body), n, elapsed.Round(time.Millisecond), float64(allocated)/(1<<20))
			require.Less(t, allocated, tc.maxHeap)
		})
	}
}

func TestDecodeConcurrent(t *testing.T) {
	dec, err := NewDecoder(1<<20, 1<<12)
	require.NoError(t, err)
	raw := encodeAll(t, sampleMetrics())
	bodies := map[string][]byte{EncodingZstd: compress(t, EncodingZstd, raw), EncodingGzip: compress(t, EncodingGzip, raw), EncodingIdentity: raw}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				enc := []string{EncodingZstd, EncodingGzip, EncodingIdentity}[(i+j)%3]
				body := bodies[enc]
				if j%5 == 0 {
					body = body[:len(body)/2] // errors return decoders to the pool too
				}
				got, _, err := dec.Decode(body, enc, time.Now())
				if j%5 != 0 {
					require.NoError(t, err)
					require.Len(t, got, 2)
				}
			}
		}()
	}
	wg.Wait()
}

func TestDecodeFuncStopsAtAdmitError(t *testing.T) {
	dec, err := NewDecoder(1<<20, 1<<10)
	require.NoError(t, err)
	errStop := errors.New("enough")
	body := strings.Repeat("m f=1i\n", 50000) + "broken\n"
	for _, enc := range []string{EncodingZstd, EncodingGzip, EncodingIdentity} {
		t.Run(enc, func(t *testing.T) {
			seen := 0
			_, n, err := dec.DecodeFunc(bytes.NewReader(compress(t, enc, []byte(body))), enc, time.Now(), func(telegraf.Metric) error {
				seen++
				if seen == 10 {
					return errStop
				}
				return nil
			})
			require.ErrorIs(t, err, errStop, "the admit error, not the later malformed line")
			require.Equal(t, 10, seen)
			require.Less(t, n, int64(len(body)), "decoding stopped before the end")
		})
	}
}

func TestOpenLimitsDecompressedSize(t *testing.T) {
	const limit = 4096
	dec, err := NewDecoder(limit, 64)
	require.NoError(t, err)
	tests := []struct {
		name    string
		body    []byte
		enc     string
		wantErr error
	}{
		{"zstd at the limit", compress(t, EncodingZstd, bytes.Repeat([]byte("x"), limit)), EncodingZstd, nil},
		{"zstd bomb", compress(t, EncodingZstd, make([]byte, 1<<20)), EncodingZstd, ErrTooLarge},
		{"gzip bomb", compress(t, EncodingGzip, make([]byte, 1<<20)), EncodingGzip, ErrTooLarge},
		{"identity over", bytes.Repeat([]byte("x"), limit+1), EncodingIdentity, ErrTooLarge},
		{"corrupt gzip", append(compress(t, EncodingGzip, []byte("abc"))[:12], 0xff, 0xff), EncodingGzip, ErrCorrupt},
		{"unknown encoding", []byte("x"), "br", ErrUnsupportedEncoding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, closeFn, err := dec.Open(bytes.NewReader(tt.body), tt.enc)
			if err == nil {
				defer closeFn()
				var n int64
				n, err = io.Copy(io.Discard, r)
				if tt.wantErr == nil {
					require.Equal(t, int64(limit), n)
				}
			}
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
		})
	}
}

// FuzzDecode: whatever the body and encoding, the decoder never panics,
// never reads past its limit and returns metrics or one of its errors; a
// body decodes the same whether it arrives as is or zstd-compressed.
func FuzzDecode(f *testing.F) {
	raw := encodeAll(f, sampleMetrics())
	f.Add(raw, EncodingIdentity)
	f.Add(compress(f, EncodingZstd, raw), EncodingZstd)
	f.Add(compress(f, EncodingGzip, raw), EncodingGzip)
	f.Add([]byte("m,t=a f=1i,g=\"x\" 1\nbad\n"), "")
	f.Add([]byte("m f=\"\xff\"\n"), "")
	f.Add([]byte(strings.Repeat("x", 300)+"\n"), "")
	f.Add([]byte("\xff"), EncodingZstd)
	const limit, line = 1 << 14, 256
	dec, err := NewDecoder(limit, line)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte, encoding string) {
		now := time.Unix(0, 0)
		got, n, err := dec.Decode(body, encoding, now)
		require.LessOrEqual(t, n, int64(limit+line+1))
		if err != nil {
			require.True(t, errors.Is(err, ErrUnsupportedEncoding) || errors.Is(err, ErrTooLarge) ||
				errors.Is(err, ErrCorrupt) || errors.Is(err, ErrMalformed), "unexpected error %v", err)
			require.Nil(t, got)
		}
		if enc, _ := ParseEncoding(encoding); enc != EncodingIdentity {
			return
		}
		zgot, _, zerr := dec.Decode(compress(t, EncodingZstd, body), EncodingZstd, now)
		require.Equal(t, err == nil, zerr == nil, "identity: %v, zstd: %v", err, zerr)
		require.Equal(t, errors.Is(err, ErrTooLarge), errors.Is(zerr, ErrTooLarge), "identity: %v, zstd: %v", err, zerr)
		if err == nil {
			testutil.RequireMetricsEqual(t, got, zgot)
		}
	})
}

// BenchmarkDecode is a zstd batch of 1000 node-shaped lines.
func BenchmarkDecode(b *testing.B) {
	var lines bytes.Buffer
	for i := range 1000 {
		lines.WriteString("kube_telemetry_node,cluster_uid=0123456789abcdef,node=")
		lines.WriteString(strings.Repeat("a", 20) + string(rune('a'+i%26)) + "bcd")
		lines.WriteString(",role=worker,os_image=Ubuntu\\ 22.04.4\\ LTS,kernel_version=5.15.0-105-generic,operating_system=linux," +
			"architecture=amd64,kubelet_version=v1.36.3,container_runtime_version=containerd://1.7.27 ready=true," +
			"cpu_capacity_millicores=16000i,memory_capacity_bytes=67430776832i,pods_capacity=110i,cpu_allocatable_millicores=15800i," +
			"memory_allocatable_bytes=66893905920i,pods_allocatable=110i,gpu_capacity=0i,gpu_allocatable=0i 1700000000000000000\n")
	}
	body := compress(b, EncodingZstd, lines.Bytes())
	dec, err := NewDecoder(64<<20, 64<<10)
	require.NoError(b, err)
	b.ReportAllocs()
	b.SetBytes(int64(lines.Len()))
	for b.Loop() {
		if _, _, err := dec.Decode(body, EncodingZstd, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/metric")
}
