package vmware_telemetry

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// The delivery queue: answered chunks are remembered as done, a split
// puts the halves first, and a write that stops remembers the current
// chunk as the one to send again.
func TestDelivery(t *testing.T) {
	a, b, c := chunk{n: 1, key: "a"}, chunk{n: 2, key: "b"}, chunk{n: 3, key: "c"}
	tests := []struct {
		name         string
		steps        func(d *delivery)
		wantQueue    []chunk
		wantAnswered []pendingChunk
		wantPending  []pendingChunk
	}{
		{"untouched", func(*delivery) {}, []chunk{a, b}, []pendingChunk{}, []pendingChunk{{Key: "a", Lines: 1}}},
		{"one answered", func(d *delivery) { d.next() }, []chunk{b},
			[]pendingChunk{{Key: "a", Lines: 1, Done: true}},
			[]pendingChunk{{Key: "a", Lines: 1, Done: true}, {Key: "b", Lines: 2}}},
		{"split", func(d *delivery) { d.next(); d.split(c, a) }, []chunk{c, a},
			[]pendingChunk{{Key: "a", Lines: 1, Done: true}},
			[]pendingChunk{{Key: "a", Lines: 1, Done: true}, {Key: "c", Lines: 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDelivery([]chunk{a, b})
			tt.steps(d)
			require.Equal(t, tt.wantQueue, d.queue)
			require.Equal(t, tt.wantAnswered, d.answered)
			require.Equal(t, tt.wantPending, d.pending())
			require.False(t, d.finished())
		})
	}
	d := newDelivery([]chunk{a})
	d.next()
	require.True(t, d.finished())
}

// send over a batch cut in three chunks, per server answer: which
// requests go out, whether the write fails, and what the next write
// re-forms.
func TestSend(t *testing.T) {
	type want struct {
		chunk int // index of the planned chunk
		done  bool
	}
	tests := []struct {
		name         string
		answers      map[int]answer // by request number; others store
		doneBefore   []int          // chunks answered in an earlier write
		wantStatuses []int
		wantErr      string
		wantPending  []want
		wantRejected int64
	}{
		{name: "every chunk stored", wantStatuses: []int{201, 201, 201}},
		{name: "chunks answered before are not sent", doneBefore: []int{0, 1}, wantStatuses: []int{201}},
		{name: "an invalid chunk is dropped, the rest sent", answers: map[int]answer{1: {status: http.StatusUnprocessableEntity}},
			wantStatuses: []int{201, 422, 201}, wantRejected: 1},
		{name: "413 sends the halves in its place", answers: map[int]answer{0: {status: http.StatusRequestEntityTooLarge}},
			wantStatuses: []int{413, 201, 201, 201, 201}},
		{name: "a failure keeps the chunk and those before are done", answers: map[int]answer{1: {status: http.StatusServiceUnavailable}},
			wantStatuses: []int{201, 503}, wantErr: "503 Service Unavailable", wantPending: []want{{0, true}, {1, false}}},
		{name: "a refusal keeps the chunk", answers: map[int]answer{0: {status: http.StatusUnauthorized}},
			wantStatuses: []int{401}, wantErr: "401 Unauthorized", wantPending: []want{{0, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, "")
			srv.setScript(func(n int, _ *received, w http.ResponseWriter) int {
				if a, ok := tt.answers[n]; ok {
					return a.write(w)
				}
				return 0
			})
			o, _ := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex), withClock(newClock()), func(o *VMwareTelemetry) {
				o.MaxAttemptsPerWrite = 1
			})
			start(t, o)
			b := &o.batch
			o.prepare(b, kubeTelemetryMetrics(6, gatherTime))
			third := len(b.lines) / 3
			chunks := []chunk{
				keyed(o, b, 0, third, false),
				keyed(o, b, third, third, false),
				keyed(o, b, 2*third, len(b.lines)-2*third, false),
			}
			for _, i := range tt.doneBefore {
				chunks[i].done = true
			}
			planned := append([]chunk(nil), chunks...)

			err := o.send(b, chunks)
			var statuses []int
			for _, r := range srv.reqs() {
				statuses = append(statuses, r.status)
			}
			require.Equal(t, tt.wantStatuses, statuses)
			require.Equal(t, tt.wantRejected, o.stats.batchesRejected.Get())
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.Nil(t, o.pending)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			var pending []pendingChunk
			for _, w := range tt.wantPending {
				pending = append(pending, pendingChunk{Key: planned[w.chunk].key, Lines: planned[w.chunk].n, Done: w.done})
			}
			require.Equal(t, pending, o.pending)
			require.True(t, o.notBefore.After(o.now()), "the next write waits")
		})
	}
}

// The halves of a 413 are sent in order and stored once each.
func TestSendHalvesInOrder(t *testing.T) {
	srv := newServer(t, "")
	srv.refuseFirst(1, answer{status: http.StatusRequestEntityTooLarge})
	o, _ := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex))
	start(t, o)
	b := &o.batch
	in := kubeTelemetryMetrics(6, gatherTime)
	o.prepare(b, in)
	whole := keyed(o, b, 0, len(b.lines), false)
	h1, h2 := o.halves(b, whole)
	require.NoError(t, o.send(b, []chunk{whole}))
	require.Equal(t, []string{whole.key, h1.key, h2.key}, keys(srv.reqs()))
	requireStoredOnce(t, srv, in)
	require.Equal(t, int64(1), o.stats.splits.Get())
}
