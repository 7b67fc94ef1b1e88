package vmware_telemetry

import (
	"strings"
	"testing"

	"github.com/influxdata/telegraf/config"
	"github.com/stretchr/testify/require"
)

// linesBatch is a batch of lines of the given sizes (newline included),
// each made of one repeated letter, so that every line differs.
func linesBatch(sizes ...int) *batch {
	b := &batch{}
	for i, n := range sizes {
		start := len(b.raw)
		b.raw = append(b.raw, strings.Repeat(string(rune('a'+i%26)), n-1)+"\n"...)
		b.lines = append(b.lines, line{start: start, end: len(b.raw), metric: i})
	}
	return b
}

// keyed returns the chunk of n lines from first, with its key.
func keyed(o *VMwareTelemetry, b *batch, first, n int, done bool) chunk {
	c := chunk{first: first, n: n, done: done}
	c.key = o.key(b, c)
	return c
}

func startedOutput(t *testing.T, opts ...func(*VMwareTelemetry)) *VMwareTelemetry {
	o, _ := newOutput(t, "https://x", writeKey(t, testKeyHex), opts...)
	require.NoError(t, o.Init())
	return o
}

// plan re-forms the pending chunks of the last failed write while the
// batch starts with them, then cuts the rest by the raw size expected to
// compress to max_payload_bytes (4:1 before any compression is seen).
func TestPlan(t *testing.T) {
	type span struct {
		first, n int
		done     bool
	}
	tests := []struct {
		name    string
		sizes   []int
		pending func(o *VMwareTelemetry, b *batch) []pendingChunk
		want    []span
	}{
		{"small lines in one chunk", []int{10, 10, 10}, nil, []span{{0, 3, false}}},
		{"cut at 4 KiB of raw lines", []int{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000}, nil,
			[]span{{0, 4, false}, {4, 4, false}, {8, 2, false}}},
		{"a line over the target is a chunk of its own", []int{10, 5000, 10}, nil, []span{{0, 1, false}, {1, 1, false}, {2, 1, false}}},
		{"pending chunks first, with their done marks", []int{10, 10, 10, 10, 10},
			func(o *VMwareTelemetry, b *batch) []pendingChunk {
				return []pendingChunk{{Key: keyed(o, b, 0, 2, false).key, Lines: 2, Done: true}, {Key: keyed(o, b, 2, 1, false).key, Lines: 1}}
			},
			[]span{{0, 2, true}, {2, 1, false}, {3, 2, false}}},
		{"pending that no longer matches is cut afresh", []int{10, 10, 10},
			func(*VMwareTelemetry, *batch) []pendingChunk {
				return []pendingChunk{{Key: "0123456789abcdef0123456789abcdef", Lines: 1, Done: true}}
			},
			[]span{{0, 3, false}}},
		{"pending after one that no longer matches is not used either", []int{10, 10, 10},
			func(o *VMwareTelemetry, b *batch) []pendingChunk {
				return []pendingChunk{{Key: keyed(o, b, 1, 1, false).key, Lines: 1}, {Key: keyed(o, b, 1, 1, false).key, Lines: 1}}
			},
			[]span{{0, 3, false}}},
		{"pending longer than the batch is cut afresh", []int{10, 10},
			func(o *VMwareTelemetry, b *batch) []pendingChunk {
				return []pendingChunk{{Key: keyed(o, b, 0, 2, false).key, Lines: 3}}
			},
			[]span{{0, 2, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := startedOutput(t, func(o *VMwareTelemetry) { o.MaxPayloadBytes = config.Size(1024) })
			b := linesBatch(tt.sizes...)
			if tt.pending != nil {
				o.pending = tt.pending(o, b)
			}
			want := make([]chunk, 0, len(tt.want))
			for _, s := range tt.want {
				want = append(want, keyed(o, b, s.first, s.n, s.done))
			}
			require.Equal(t, want, o.plan(b))
		})
	}
}

// A chunk's key depends on its bytes and on who sends them at which level
// under which dictionary, and on nothing else.
func TestKey(t *testing.T) {
	b := linesBatch(10, 20, 30)
	o := startedOutput(t)
	base := keyed(o, b, 0, 2, false)
	require.Regexp(t, "^[0-9a-f]{32}$", base.key)
	require.Equal(t, base.key, keyed(o, b, 0, 2, true).key, "done is not part of the key")
	require.Equal(t, base.key, keyed(o, linesBatch(10, 20, 99), 0, 2, false).key, "other lines are not part of the key")
	require.NotEqual(t, base.key, keyed(o, b, 0, 3, false).key)
	require.NotEqual(t, base.key, keyed(o, b, 1, 2, false).key)

	tests := []struct {
		name   string
		change func(o *VMwareTelemetry)
	}{
		{"instance", func(o *VMwareTelemetry) { o.instance = "another" }},
		{"level", func(o *VMwareTelemetry) { o.level = "enhanced" }},
		{"dictionary version", func(o *VMwareTelemetry) { d := *o.dict; d.Version = "9.9.9"; o.dict = &d }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := startedOutput(t)
			tt.change(other)
			require.NotEqual(t, base.key, keyed(other, b, 0, 2, false).key)
		})
	}
}

func TestHalves(t *testing.T) {
	tests := []struct {
		name          string
		first, n      int
		wantA, wantB  int // lines in each half
		wantBeginsAtB int
	}{
		{"two lines", 0, 2, 1, 1, 1},
		{"odd: the second half is larger", 1, 5, 2, 3, 3},
	}
	b := linesBatch(10, 10, 10, 10, 10, 10)
	o := startedOutput(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h1, h2 := o.halves(b, keyed(o, b, tt.first, tt.n, false))
			require.Equal(t, keyed(o, b, tt.first, tt.wantA, false), h1)
			require.Equal(t, keyed(o, b, tt.wantBeginsAtB, tt.wantB, false), h2)
		})
	}
}

// A body over max_payload_bytes is sent in halves; one metric that large
// can never be sent and is dropped, counted and logged.
func TestSplitOversized(t *testing.T) {
	tests := []struct {
		name         string
		n            int
		wantQueue    []int // lines of the chunks left in the queue
		wantRejected int64
	}{
		{"several metrics: halves", 3, []int{1, 2, 1}, 0},
		{"one metric: dropped", 1, []int{1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, log := newOutput(t, "https://x", writeKey(t, testKeyHex))
			require.NoError(t, o.Init())
			b := linesBatch(10, 10, 10, 10)
			c := keyed(o, b, 0, tt.n, false)
			d := newDelivery([]chunk{c, keyed(o, b, tt.n, 1, false)})
			o.splitOversized(b, d, c, 5000)

			var lines []int
			for _, q := range d.queue {
				lines = append(lines, q.n)
			}
			require.Equal(t, tt.wantQueue, lines)
			require.Equal(t, tt.wantRejected, o.stats.batchesRejected.Get())
			if tt.wantRejected == 0 {
				require.Empty(t, d.answered)
				require.Empty(t, log.Errors())
				return
			}
			require.Equal(t, []pendingChunk{{Key: c.key, Lines: 1, Done: true}}, d.answered)
			require.Len(t, log.Errors(), 1)
			require.Contains(t, log.Errors()[0], "Dropping batch "+c.key+": its one metric compresses to 5000 bytes, over max_payload_bytes 1048576")
		})
	}
}
