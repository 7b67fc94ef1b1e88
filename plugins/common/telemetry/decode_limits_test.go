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
	"github.com/influxdata/telegraf/testutil"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

func TestStreamDecodeRoundTrip(t *testing.T) {
	in := sampleMetrics()
	raw := encodeAll(t, in)
	dec, err := NewStreamDecoder(1<<20, 1<<16)
	require.NoError(t, err)
	for _, enc := range []string{EncodingZstd, EncodingGzip, EncodingIdentity, ""} {
		t.Run("encoding="+enc, func(t *testing.T) {
			c, err := NewCompressor(enc)
			require.NoError(t, err)
			body, err := c.Compress(nil, raw)
			require.NoError(t, err)
			// Twice: decoders come back from the pool.
			for range 2 {
				got, n, err := dec.Decode(body, enc, time.Now())
				require.NoError(t, err)
				require.Equal(t, int64(len(raw)), n)
				testutil.RequireMetricsEqual(t, in, got)
			}
		})
	}
}

func TestStreamDecodeMatchesDecoder(t *testing.T) {
	now := time.Unix(42, 0)
	inputs := []string{
		"",
		"\n\n# comment\n",
		"m f=1i",
		"m f=1i\nm,t=a g=2.5,h=\"x y\",b=true 7\n",
		"m f=1i\r\nm f=2i\r\n",
		"m,t=a\\ b\\,c f=\"q\\\"uote\" 1\n",
		"m f=1i\nbroken line\nm f=3i\n",
		"m f=1u 1\n",
	}
	stream, err := NewStreamDecoder(1<<20, 1<<10)
	require.NoError(t, err)
	whole, err := NewDecoder(1<<20, 1<<10)
	require.NoError(t, err)
	defer whole.Close()
	for _, in := range inputs {
		want, wantN, wantErr := whole.Decode([]byte(in), "", now)
		got, gotN, gotErr := stream.Decode([]byte(in), "", now)
		if wantErr != nil {
			require.ErrorIs(t, gotErr, ErrMalformed, "%q", in)
			continue
		}
		require.NoError(t, gotErr, "%q", in)
		require.Equal(t, wantN, gotN, "%q", in)
		testutil.RequireMetricsEqual(t, want, got)
	}
}

func TestStreamDecodeErrors(t *testing.T) {
	const limit = 1 << 20
	dec, err := NewStreamDecoder(limit, 64)
	require.NoError(t, err)
	line := []byte("kube_telemetry_pods total=1i\n")
	lines := bytes.Repeat(line, limit/len(line)+1) // just over the limit
	long := "m f=\"" + strings.Repeat("x", 80) + "\"\n"
	z := zstdBytes(t, bytes.Repeat(line, 100))
	g := gzipBytes(t, bytes.Repeat(line, 100))

	tests := []struct {
		name, encoding string
		body           []byte
		want           error
		msg            string
	}{
		{"unknown encoding", "br", line, ErrUnsupportedEncoding, `"br"`},
		{"zstd truncated", EncodingZstd, z[:len(z)/2], ErrCorrupt, "zstd"},
		{"zstd garbage", EncodingZstd, []byte("not zstd at all"), ErrCorrupt, "zstd"},
		{"gzip truncated", EncodingGzip, g[:len(g)/2], ErrCorrupt, "gzip"},
		{"gzip garbage", EncodingGzip, []byte("not gzip at all"), ErrCorrupt, "gzip"},
		{"zstd over limit", EncodingZstd, zstdBytes(t, lines), ErrTooLarge, "zstd"},
		{"gzip over limit", EncodingGzip, gzipBytes(t, lines), ErrTooLarge, "gzip"},
		{"identity over limit", EncodingIdentity, lines, ErrTooLarge, "identity"},
		{"long line", "", []byte(long), ErrMalformed, "line 1 longer than 64 bytes"},
		{"long second line", "", []byte("m f=1i\n" + long), ErrMalformed, "line 2 longer than 64 bytes"},
		{"long last line without newline", "", []byte("m f=1i\n" + strings.TrimSuffix(long, "\n")), ErrMalformed, "line 2 longer"},
		{"invalid utf-8", "", []byte("m f=1i\nm f=\"\xff\"\n"), ErrMalformed, "invalid UTF-8 in line 2 at byte 5"},
		{"syntax", "", []byte("m f=1i\nm f=notanumber\n"), ErrMalformed, "malformed line protocol"},
		// The size limit wins over a bad line early in the body.
		{"malformed and over limit", EncodingZstd, zstdBytes(t, append([]byte("bad\n"), lines...)), ErrTooLarge, ""},
		{"long line and over limit", EncodingZstd, zstdBytes(t, make([]byte, 2*limit)), ErrTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := dec.Decode(tt.body, tt.encoding, time.Now())
			require.ErrorIs(t, err, tt.want)
			require.ErrorContains(t, err, tt.msg)
			require.Nil(t, got)
			require.LessOrEqual(t, n, int64(limit)+64+1)
		})
	}

	// At the limit exactly is fine.
	exact := bytes.Repeat([]byte("m f=1i\n"), limit/7)
	got, n, err := dec.Decode(zstdBytes(t, exact), EncodingZstd, time.Now())
	require.NoError(t, err)
	require.Equal(t, int64(len(exact)), n)
	require.Len(t, got, limit/7)
}

func TestNewStreamDecoderErrors(t *testing.T) {
	_, err := NewStreamDecoder(0, 1)
	require.ErrorContains(t, err, "must be positive")
	_, err = NewStreamDecoder(10, 0)
	require.ErrorContains(t, err, "line size limit 0")
	_, err = NewStreamDecoder(10, 11)
	require.ErrorContains(t, err, "at most the decompressed size limit")
}

// A bomb of 1 GiB of zeros costs the stream decoder a few megabytes
// whatever the limit, unlike Decoder which holds the decompressed body.
// A bomb of 1 GiB of valid lines costs the metrics parsed until the limit
// is met: what a legitimate body of that size costs.
func TestStreamDecodeBombBoundedMemory(t *testing.T) {
	const limit = 8 << 20
	dec, err := NewStreamDecoder(limit, 64<<10)
	require.NoError(t, err)

	chunk := make([]byte, 64<<20)
	lineChunk := bytes.Repeat([]byte("kube_telemetry_pods,cluster_uid=0123456789abcdef total=1i 1\n"), (64<<20)/68)
	var zeroZ, linesZ, zeroG bytes.Buffer
	for _, c := range []struct {
		buf  *bytes.Buffer
		data []byte
		gz   bool
	}{{&zeroZ, chunk, false}, {&linesZ, lineChunk, false}, {&zeroG, chunk, true}} {
		var w interface {
			Write([]byte) (int, error)
			Close() error
		}
		if c.gz {
			w = gzip.NewWriter(c.buf)
		} else {
			zw, err := zstd.NewWriter(c.buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
			require.NoError(t, err)
			w = zw
		}
		for range 16 {
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
			require.Less(t, after.TotalAlloc-before.TotalAlloc, tc.maxHeap)
		})
	}
}

func TestStreamDecodeConcurrent(t *testing.T) {
	dec, err := NewStreamDecoder(1<<20, 1<<12)
	require.NoError(t, err)
	raw := encodeAll(t, sampleMetrics())
	bodies := map[string][]byte{EncodingZstd: zstdBytes(t, raw), EncodingGzip: gzipBytes(t, raw), EncodingIdentity: raw}
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

// FuzzStreamDecode: StreamDecoder never panics, never reads past its limit,
// returns only our errors, and agrees with Decoder on identity bodies.
func FuzzStreamDecode(f *testing.F) {
	raw := encodeAll(f, sampleMetrics())
	f.Add(raw, EncodingIdentity)
	f.Add(zstdBytes(f, raw), EncodingZstd)
	f.Add(gzipBytes(f, raw), EncodingGzip)
	f.Add([]byte("m,t=a f=1i,g=\"x\" 1\nbad\n"), "")
	f.Add([]byte("m f=\"\xff\"\n"), "")
	f.Add([]byte(strings.Repeat("x", 300)+"\n"), "")
	const limit, line = 1 << 14, 256
	stream, err := NewStreamDecoder(limit, line)
	require.NoError(f, err)
	whole, err := NewDecoder(limit, line)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte, encoding string) {
		now := time.Unix(0, 0)
		got, n, err := stream.Decode(body, encoding, now)
		require.LessOrEqual(t, n, int64(limit+line+1))
		if err != nil {
			require.True(t, errors.Is(err, ErrUnsupportedEncoding) || errors.Is(err, ErrTooLarge) ||
				errors.Is(err, ErrCorrupt) || errors.Is(err, ErrMalformed), "unexpected error %v", err)
			require.Nil(t, got)
		}
		if enc, _ := ParseEncoding(encoding); enc != EncodingIdentity {
			return
		}
		want, _, wantErr := whole.Decode(body, encoding, now)
		if wantErr != nil || err != nil {
			require.Equal(t, wantErr == nil, err == nil, "stream: %v, whole: %v", err, wantErr)
			require.Equal(t, errors.Is(wantErr, ErrTooLarge), errors.Is(err, ErrTooLarge), "stream: %v, whole: %v", err, wantErr)
			return
		}
		testutil.RequireMetricsEqual(t, want, got)
	})
}

// BenchmarkDecode compares the stream decoder with Decoder on the same
// zstd batch of 1000 node-shaped lines.
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
	body := zstdBytes(b, lines.Bytes())
	stream, err := NewStreamDecoder(64<<20, 64<<10)
	require.NoError(b, err)
	whole, err := NewDecoder(64<<20, 64<<10)
	require.NoError(b, err)
	defer whole.Close()
	for name, decode := range map[string]func() error{
		"stream": func() error { _, _, err := stream.Decode(body, EncodingZstd, time.Now()); return err },
		"whole":  func() error { _, _, err := whole.Decode(body, EncodingZstd, time.Now()); return err },
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(lines.Len()))
			for b.Loop() {
				if err := decode(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/metric")
		})
	}
}

func TestStreamDecodeFuncStopsAtAdmitError(t *testing.T) {
	dec, err := NewStreamDecoder(1<<20, 1<<10)
	require.NoError(t, err)
	errStop := errors.New("enough")
	body := strings.Repeat("m f=1i\n", 50000) + "broken\n"
	for _, enc := range []string{EncodingZstd, EncodingGzip, EncodingIdentity} {
		t.Run(enc, func(t *testing.T) {
			c, err := NewCompressor(enc)
			require.NoError(t, err)
			compressed, err := c.Compress(nil, []byte(body))
			require.NoError(t, err)
			seen := 0
			_, n, err := dec.DecodeFunc(bytes.NewReader(compressed), enc, time.Now(), func(telegraf.Metric) error {
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

func TestStreamOpenLimitsDecompressedSize(t *testing.T) {
	const limit = 4096
	dec, err := NewStreamDecoder(limit, 64)
	require.NoError(t, err)
	tests := []struct {
		name    string
		body    []byte
		enc     string
		wantErr error
	}{
		{"zstd at the limit", zstdBytes(t, bytes.Repeat([]byte("x"), limit)), EncodingZstd, nil},
		{"zstd bomb", zstdBytes(t, make([]byte, 64<<20)), EncodingZstd, ErrTooLarge},
		{"gzip bomb", gzipBytes(t, make([]byte, 1<<20)), EncodingGzip, ErrTooLarge},
		{"identity over", bytes.Repeat([]byte("x"), limit+1), EncodingIdentity, ErrTooLarge},
		{"corrupt gzip", append(gzipBytes(t, []byte("abc"))[:12], 0xff, 0xff), EncodingGzip, ErrCorrupt},
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
