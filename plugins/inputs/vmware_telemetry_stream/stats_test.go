package vmware_telemetry_stream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/selfstat"
	"github.com/influxdata/telegraf/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetrystream"
)

// Each mode registers its own counters and the shared one, tagged with the
// durable consumer and the stream.
func TestStatsRegisteredPerMode(t *testing.T) {
	for _, tt := range []struct {
		name  string
		relay bool
		want  []string
	}{
		{name: "lake consumer", want: []string{"batches_written", "metrics_written", "batches_skipped", "batches_dropped_by_outputs", "lake_bucket_errors", "messages_terminated"}},
		{name: "relay", relay: true, want: []string{"batches_relayed", "batches_duplicate", "relay_failures", "batches_refused", "messages_terminated"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStream(t, []string{"nats://127.0.0.1:4222"})
			if tt.relay {
				s.Durable = "tkgi-relay"
				s.Relay = &Relay{URL: "https://telemetry.example.com/ph"}
			}
			require.NoError(t, s.Init())
			got := map[string]bool{}
			for _, m := range selfstat.Metrics() {
				if m.Name() != "internal_"+statsMeasurement || m.Tags()["test"] != t.Name() {
					continue
				}
				require.Equal(t, map[string]string{
					"test": t.Name(), "run": m.Tags()["run"], "durable": s.Durable, "stream": telemetrystream.DefaultStream,
				}, m.Tags())
				for _, f := range m.FieldList() {
					got[f.Key] = true
				}
			}
			require.Len(t, got, len(tt.want))
			for _, f := range tt.want {
				require.True(t, got[f], "field %s registered", f)
			}
		})
	}
}

// testStreams numbers the streams newTestStream makes, so that a test run
// again (go test -count) starts from zero counters.
var testStreams atomic.Int64

// newTestStream is the plugin with defaults, a quiet logger and its own
// statistics, tagged with the test's name and a run number.
func newTestStream(t *testing.T, servers []string) *Stream {
	s := inputs.Inputs["vmware_telemetry_stream"]().(*Stream)
	s.Servers = servers
	s.Log = testutil.Logger{Name: "vmware_telemetry_stream", Quiet: true}
	s.Statistics = selfstat.NewCollector(map[string]string{
		"test": t.Name(), "run": strconv.FormatInt(testStreams.Add(1), 10),
	})
	return s
}

// counters reads the plugin's self-metrics by field.
func (s *stats) counters() map[string]int64 {
	out := map[string]int64{}
	for name, st := range map[string]selfstat.Stat{
		"batches_written": s.batchesWritten, "metrics_written": s.metricsWritten,
		"batches_skipped": s.batchesSkipped, "batches_dropped_by_outputs": s.droppedByOutputs,
		"lake_bucket_errors": s.lakeBucketErrors, "batches_relayed": s.batchesRelayed,
		"batches_duplicate": s.batchesDuplicate, "relay_failures": s.relayFailures,
		"batches_refused": s.batchesRefused, "messages_terminated": s.messagesTerminated,
	} {
		if st != nil && st.Get() != 0 {
			out[name] = st.Get()
		}
	}
	return out
}

// fakeMsg records how a message was settled.
type fakeMsg struct {
	jetstream.Msg
	header nats.Header
	data   []byte

	mu      sync.Mutex
	settled []string
}

func (m *fakeMsg) Headers() nats.Header { return m.header }
func (m *fakeMsg) Data() []byte         { return m.data }
func (*fakeMsg) Subject() string        { return "test" }
func (*fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return nil, errors.New("no metadata")
}
func (m *fakeMsg) record(how string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.settled = append(m.settled, how)
	return nil
}
func (m *fakeMsg) Ack() error                       { return m.record("ack") }
func (m *fakeMsg) DoubleAck(context.Context) error  { return m.record("double-ack") }
func (m *fakeMsg) Nak() error                       { return m.record("nak") }
func (m *fakeMsg) NakWithDelay(time.Duration) error { return m.record("nak-delay") }
func (m *fakeMsg) Term() error                      { return m.record("term") }
func (m *fakeMsg) InProgress() error                { return m.record("in-progress") }
func (m *fakeMsg) how() []string                    { m.mu.Lock(); defer m.mu.Unlock(); return m.settled }

// fakeBucket is the lake bucket: the keys written, and errors to answer.
type fakeBucket struct {
	jetstream.KeyValue
	getErr, putErr error
	// putFails is how many puts answer putErr before one lands; 0: all.
	putFails int

	mu   sync.Mutex
	keys map[string]bool
	puts int
}

func (b *fakeBucket) Get(_ context.Context, key string) (jetstream.KeyValueEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.getErr != nil {
		return nil, b.getErr
	}
	if !b.keys[key] {
		return nil, jetstream.ErrKeyNotFound
	}
	return nil, nil
}

func (b *fakeBucket) Put(_ context.Context, key string, _ []byte) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.puts++
	if b.putErr != nil && (b.putFails == 0 || b.puts <= b.putFails) {
		return 0, b.putErr
	}
	b.keys[key] = true
	return 1, nil
}

// What the consumer does with one message, and what it counts.
func TestConsumerSettlesAndCounts(t *testing.T) {
	quickMarkRetries(t)
	good := func(t *testing.T) (nats.Header, []byte) {
		msg, err := telemetrystream.Encode("test", batch("k1", 4), 0)
		require.NoError(t, err)
		return msg.Header, msg.Data
	}
	for _, tt := range []struct {
		name    string
		msg     func(*testing.T) (nats.Header, []byte)
		bucket  *fakeBucket
		drops   int
		want    []string
		marked  bool
		counted map[string]int64
	}{
		{
			name: "written batch is marked, then acknowledged",
			msg:  good, want: []string{"double-ack"}, marked: true,
			counted: map[string]int64{"batches_written": 1, "metrics_written": 4},
		},
		{
			name: "batch written before is acknowledged, not written",
			msg:  good, bucket: &fakeBucket{keys: map[string]bool{"id-k1": true}}, want: []string{"ack"}, marked: true,
			counted: map[string]int64{"batches_skipped": 1},
		},
		{
			name: "batch the outputs dropped is sent back",
			msg:  good, drops: 1, want: []string{"nak-delay"},
			counted: map[string]int64{"batches_dropped_by_outputs": 1},
		},
		{
			name: "unreadable lake bucket delivers the batch later",
			msg:  good, bucket: &fakeBucket{getErr: errors.New("timeout")}, want: []string{"nak-delay"},
			counted: map[string]int64{"lake_bucket_errors": 1},
		},
		{
			name: "failed marks are counted and tried again, then the batch acknowledged",
			msg:  good, bucket: &fakeBucket{putErr: errors.New("no quorum"), putFails: 2},
			want: []string{"in-progress", "in-progress", "double-ack"}, marked: true,
			counted: map[string]int64{"batches_written": 1, "metrics_written": 4, "lake_bucket_errors": 2},
		},
		{
			name: "unreadable message is terminated",
			msg: func(*testing.T) (nats.Header, []byte) {
				return nats.Header{telemetrystream.HeaderEncoding: []string{"zstd"}}, []byte("not zstd")
			},
			want:    []string{"term"},
			counted: map[string]int64{"messages_terminated": 1},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStream(t, []string{"nats://127.0.0.1:4222"})
			require.NoError(t, s.Init())
			out := newLake()
			out.drops = tt.drops
			bucket := tt.bucket
			if bucket == nil {
				bucket = &fakeBucket{}
			}
			if bucket.keys == nil {
				bucket.keys = map[string]bool{}
			}
			c := &consumer{
				s: s, acc: out, lake: bucket,
				slots:    make(chan struct{}, 1),
				pending:  map[telegraf.TrackingID]pendingBatch{},
				inFlight: map[string]bool{},
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				c.deliveries(ctx)
			}()

			header, data := tt.msg(t)
			msg := &fakeMsg{header: header, data: data}
			c.slots <- struct{}{}
			if !c.handle(ctx, msg) {
				<-c.slots
			}
			c.drain(10 * time.Second)
			cancel()
			<-done

			require.Empty(t, c.slots, "every slot given back")
			require.Equal(t, tt.want, msg.how())
			require.Equal(t, tt.marked, bucket.keys["id-k1"], "batch marked in the lake bucket")
			require.Equal(t, tt.counted, s.stats.counters())
		})
	}
}

// On a real cluster: after a known set of batches the counters and the
// consumer's state say what happened; while the outputs hold batches the
// state shows the lag and the deliveries again; with the engine's quorum
// gone, Gather says what to check within seconds.
func TestConsumerReportsItself(t *testing.T) {
	c := newStreamCluster(t)
	cluster := c.Cluster
	c.seed()
	garbage := nats.NewMsg(c.cfg.Subject)
	garbage.Header.Set(nats.MsgIdHdr, "id-garbage")
	garbage.Header.Set(telemetrystream.HeaderEncoding, "zstd")
	garbage.Data = []byte("not zstd")
	c.publishMsg(garbage)

	out := newLake()
	out.drops = 1
	s := newTestStream(t, cluster.URLs())
	s.AckWait = config.Duration(2 * time.Second)
	s.MaxUndeliveredBatches = 2
	require.NoError(t, s.Init())
	require.NoError(t, s.Start(out))
	defer s.Stop()

	state := func() map[string]any {
		var acc testutil.Accumulator
		if s.Gather(&acc) != nil || len(acc.Metrics) != 1 {
			return nil
		}
		m := acc.Metrics[0]
		require.Equal(t, stateMeasurement, m.Measurement)
		require.Equal(t, map[string]string{"durable": "tkgi-lake", "stream": telemetrystream.DefaultStream}, m.Tags)
		return m.Fields
	}
	var fields map[string]any
	settledWith := func(batches int) func() bool {
		return func() bool {
			fields = state()
			return len(out.perBatch()) == batches && fields != nil && fields["pending"] == int64(0) && fields["ack_pending"] == int64(0)
		}
	}
	require.Eventually(t, settledWith(3), time.Minute, 100*time.Millisecond)
	require.Equal(t, map[string]int64{
		"batches_written": 3, "metrics_written": 15, "batches_skipped": 1,
		"batches_dropped_by_outputs": 1, "messages_terminated": 1,
	}, s.stats.counters())
	require.Equal(t, int64(5), fields["stream_messages"])
	require.Positive(t, fields["stream_bytes"])
	require.Equal(t, int64(3), fields["stream_replicas_current"])
	require.Equal(t, int64(0), fields["redelivered"])

	// The outputs stall: the lag is what waits beyond the batches held and
	// prefetched (at most max_undelivered_batches x 2 unacknowledged).
	out.mu.Lock()
	out.hold = true
	out.mu.Unlock()
	for i := range 6 {
		c.publish(batch(fmt.Sprintf("late%d", i), 3))
	}
	require.Eventually(t, func() bool {
		fields = state()
		return out.holding() == 2 && fields != nil && fields["pending"].(int64)+fields["ack_pending"].(int64) == 6
	}, 30*time.Second, 100*time.Millisecond)
	t.Logf("outputs stalled: %v", fields)
	require.GreaterOrEqual(t, fields["pending"], int64(2))

	out.release()
	require.Eventually(t, settledWith(9), time.Minute, 100*time.Millisecond)
	for key, n := range out.perBatch() {
		require.Contains(t, []int{3, 5}, n, "batch %s written once", key)
	}
	got := s.stats.counters()
	require.Equal(t, int64(9), got["batches_written"])
	require.Equal(t, int64(15+6*3), got["metrics_written"])
	require.Equal(t, int64(0), got["lake_bucket_errors"])

	// Two of three servers down: no quorum, Gather fails within its bound.
	// A leader left alone may answer from its state until it notices the
	// lost quorum and steps down (seconds), so Gather fails soon, not at
	// once; no try may take longer than the bound.
	cluster.Kill(1)
	cluster.Kill(2)
	killed := time.Now()
	var err error
	for {
		var acc testutil.Accumulator
		start := time.Now()
		err = s.Gather(&acc)
		require.Less(t, time.Since(start), stateTimeout+time.Second, "a Gather without quorum outlived its bound")
		if err != nil {
			break
		}
		require.Less(t, time.Since(killed), 30*time.Second, "Gather kept answering with two of three servers down")
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("quorum lost: %v (%s after the kills)", err, time.Since(killed).Round(time.Millisecond))
	var acc testutil.Accumulator
	cluster.Kill(0)
	require.Eventually(t, func() bool {
		start := time.Now()
		err := s.Gather(&acc)
		return err != nil && strings.Contains(err.Error(), "not connected to NATS") && time.Since(start) < time.Second
	}, 10*time.Second, 100*time.Millisecond)
	require.Empty(t, acc.Metrics)
}

// The relay on a real cluster, to an upstream that takes one batch, has
// another already, fails once on a third and refuses a fourth; a fifth
// message cannot be read. Its counters say so.
func TestRelayReportsItself(t *testing.T) {
	c := newStreamCluster(t)

	var mu sync.Mutex
	tries := map[string]int{}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(telemetry.HeaderIdempotencyKey)
		mu.Lock()
		tries[key]++
		n := tries[key]
		mu.Unlock()
		switch {
		case key == "has-it":
			w.Header().Set(telemetry.HeaderDuplicate, "true")
			w.WriteHeader(http.StatusOK)
		case key == "flaky" && n == 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case key == "refused":
			http.Error(w, "measurement not in the dictionary", http.StatusUnprocessableEntity)
		default:
			w.WriteHeader(http.StatusCreated)
		}
	}))
	defer upstream.Close()

	for _, key := range []string{"takes-it", "has-it", "flaky", "refused"} {
		c.publish(telemetrystream.Batch{ID: "id-" + key, Key: key, Metrics: []telegraf.Metric{
			stamped("tkgi-agent", "0123456789abcdef0123456789abcdef", "standard", map[string]any{"total": int64(1)}),
		}})
	}
	garbage := nats.NewMsg(c.cfg.Subject)
	garbage.Header.Set(nats.MsgIdHdr, "id-garbage")
	garbage.Data = []byte("not line protocol")
	c.publishMsg(garbage)

	s := newTestStream(t, c.URLs())
	s.Durable = "tkgi-relay"
	s.Relay = &Relay{URL: upstream.URL + telemetry.DefaultPath}
	require.NoError(t, s.Init())
	var acc testutil.Accumulator
	require.NoError(t, s.Start(&acc))
	defer s.Stop()

	want := map[string]int64{
		"batches_relayed": 3, "batches_duplicate": 1, "relay_failures": 1,
		"batches_refused": 1, "messages_terminated": 1,
	}
	require.Eventually(t, func() bool {
		var state testutil.Accumulator
		if s.Gather(&state) != nil || len(state.Metrics) != 1 {
			return false
		}
		f := state.Metrics[0].Fields
		return f["pending"] == int64(0) && f["ack_pending"] == int64(0) && len(s.stats.counters()) == len(want)
	}, time.Minute, 100*time.Millisecond)
	require.Equal(t, want, s.stats.counters())
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]int{"takes-it": 1, "has-it": 1, "flaky": 2, "refused": 1}, tries)
}
