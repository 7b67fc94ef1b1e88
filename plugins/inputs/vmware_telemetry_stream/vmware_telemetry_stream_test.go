package vmware_telemetry_stream

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testnats"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetrystream"
)

func TestInit(t *testing.T) {
	for _, tt := range []struct {
		name    string
		set     func(*Stream)
		wantErr string
	}{
		{name: "servers and defaults", set: func(*Stream) {}},
		{name: "no servers", set: func(s *Stream) { s.Servers = nil }, wantErr: "servers is empty"},
		{name: "no durable", set: func(s *Stream) { s.Durable = "" }, wantErr: "durable is empty"},
		{name: "no lake bucket", set: func(s *Stream) { s.LakeBucket = "" }, wantErr: "lake_bucket is empty"},
		{name: "ack_wait under a second", set: func(s *Stream) { s.AckWait = 0 }, wantErr: "ack_wait"},
		{name: "no undelivered batches", set: func(s *Stream) { s.MaxUndeliveredBatches = 0 }, wantErr: "max_undelivered_batches"},
		{name: "line over the body limit", set: func(s *Stream) { s.MaxLineSize = s.MaxDecompressedSize + 1 }, wantErr: "max_line_size"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := inputs.Inputs["vmware_telemetry_stream"]().(*Stream)
			s.Servers = []string{"nats://127.0.0.1:4222"}
			tt.set(s)
			err := s.Init()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, telemetrystream.DefaultStream, s.Config.Stream)
			require.Equal(t, telemetrystream.DefaultSubject, s.Subject)
		})
	}
}

// lake stands in for Telegraf's outputs: it writes (accepts) every group
// at once, or drops (rejects) the next `drops` groups, or, while hold is
// set, keeps them unwritten until release.
type lake struct {
	*testutil.Accumulator
	delivered chan telegraf.DeliveryInfo

	mu      sync.Mutex
	drops   int
	hold    bool
	held    [][]telegraf.Metric
	written []telegraf.Metric
}

func newLake() *lake {
	return &lake{Accumulator: &testutil.Accumulator{}, delivered: make(chan telegraf.DeliveryInfo, 64)}
}

func (l *lake) WithTracking(int) telegraf.TrackingAccumulator { return l }

func (l *lake) Delivered() <-chan telegraf.DeliveryInfo { return l.delivered }

func (l *lake) AddTrackingMetricGroup(group []telegraf.Metric) telegraf.TrackingID {
	tracked, id := metric.WithGroupTracking(group, func(info telegraf.DeliveryInfo) { l.delivered <- info })
	l.mu.Lock()
	if l.hold {
		l.held = append(l.held, tracked)
		l.mu.Unlock()
		return id
	}
	drop := l.drops > 0
	if drop {
		l.drops--
	} else {
		l.written = append(l.written, group...)
	}
	l.mu.Unlock()
	for _, m := range tracked {
		if drop {
			m.Reject()
		} else {
			m.Accept()
		}
	}
	return id
}

// release writes the groups held and stops holding.
func (l *lake) release() {
	l.mu.Lock()
	held := l.held
	l.hold, l.held = false, nil
	for _, group := range held {
		l.written = append(l.written, group...)
	}
	l.mu.Unlock()
	for _, group := range held {
		for _, m := range group {
			m.Accept()
		}
	}
}

// holding is the number of groups held.
func (l *lake) holding() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}

// perBatch counts the written metrics by batch_key.
func (l *lake) perBatch() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := map[string]int{}
	for _, m := range l.written {
		key, _ := m.GetField("batch_key")
		n[fmt.Sprint(key)]++
	}
	return n
}

func batch(key string, n int) telemetrystream.Batch {
	b := telemetrystream.Batch{ID: "id-" + key, Key: key}
	for i := range n {
		b.Metrics = append(b.Metrics, metric.New("kube_telemetry_nodes",
			map[string]string{"instance": "0123456789abcdef0123456789abcdef"},
			map[string]any{"total": int64(i), "batch_key": key},
			time.Unix(1_700_000_000, int64(i))))
	}
	return b
}

// streamCluster is a real three-node cluster with the stream and the lake
// bucket made, as the listener replicas and the consumer leave them.
type streamCluster struct {
	*testnats.Cluster
	t     *testing.T
	ctx   context.Context
	js    jetstream.JetStream
	cfg   telemetrystream.Config
	marks jetstream.KeyValue
}

func newStreamCluster(t *testing.T) *streamCluster {
	c := &streamCluster{Cluster: testnats.Start(t), t: t}
	_, c.js = c.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	c.ctx = ctx
	c.cfg = telemetrystream.Config{Servers: c.URLs()}
	c.cfg.SetDefaults()
	_, err := c.cfg.EnsureStream(ctx, c.js)
	require.NoError(t, err)
	c.marks, err = c.cfg.EnsureBucket(ctx, c.js, "TKGI_TELEMETRY_LAKE", "test", time.Hour)
	require.NoError(t, err)
	return c
}

// publish stores b as a listener replica does.
func (c *streamCluster) publish(b telemetrystream.Batch) {
	c.t.Helper()
	msg, err := telemetrystream.Encode(c.cfg.Subject, b, 0)
	require.NoError(c.t, err)
	c.publishMsg(msg)
}

func (c *streamCluster) publishMsg(msg *nats.Msg) {
	c.t.Helper()
	_, err := c.js.PublishMsg(c.ctx, msg)
	require.NoError(c.t, err)
}

// startHolding stores four batches (prefix0-3, 2 metrics each) and starts
// a consumer, changed by set if given, whose outputs hold them unwritten.
func (c *streamCluster) startHolding(prefix string, set func(*Stream)) (*Stream, *lake) {
	c.t.Helper()
	for i := range 4 {
		c.publish(batch(fmt.Sprintf("%s%d", prefix, i), 2))
	}
	out := newLake()
	out.hold = true
	s := newTestStream(c.t, c.URLs())
	s.MaxUndeliveredBatches = 4
	if set != nil {
		set(s)
	}
	require.NoError(c.t, s.Init())
	require.NoError(c.t, s.Start(out))
	require.Eventually(c.t, func() bool { return out.holding() == 4 }, time.Minute, 50*time.Millisecond)
	return s, out
}

// seed stores b1, b2 and b3 (5 metrics each) and written-before, whose
// key the lake bucket holds (a crash after its write, before its
// acknowledgement).
func (c *streamCluster) seed() {
	c.t.Helper()
	_, err := c.marks.Put(c.ctx, "id-written-before", []byte("written"))
	require.NoError(c.t, err)
	for _, key := range []string{"b1", "b2", "written-before", "b3"} {
		c.publish(batch(key, 5))
	}
}

// The consumer on a real cluster: each batch reaches the outputs once and
// is acknowledged; one the lake bucket says was written (a crash after the
// write, before the acknowledgement) is acknowledged without a second
// write; one the outputs dropped comes again; a restart resumes where the
// durable consumer stood.
func TestConsumerWritesEachBatchOnce(t *testing.T) {
	c := newStreamCluster(t)
	cluster, js, ctx, marks, publish := c.Cluster, c.js, c.ctx, c.marks, c.publish
	c.seed()

	start := func(l *lake) *Stream {
		s := inputs.Inputs["vmware_telemetry_stream"]().(*Stream)
		s.Servers = cluster.URLs()
		s.AckWait = config.Duration(2 * time.Second)
		s.Log = testutil.Logger{Name: "vmware_telemetry_stream", Quiet: true}
		require.NoError(t, s.Init())
		require.NoError(t, s.Start(l))
		return s
	}
	settled := func() bool {
		c, err := js.Consumer(ctx, telemetrystream.DefaultStream, "tkgi-lake")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}

	first := newLake()
	first.drops = 1 // the first batch delivered is dropped once
	s := start(first)
	require.Eventually(t, func() bool { return len(first.perBatch()) == 3 && settled() }, time.Minute, 100*time.Millisecond)
	require.Equal(t, map[string]int{"b1": 5, "b2": 5, "b3": 5}, first.perBatch())
	s.Stop()

	second := newLake()
	publish(batch("after-restart", 3))
	s = start(second)
	defer s.Stop()
	require.Eventually(t, func() bool { return len(second.perBatch()) == 1 && settled() }, time.Minute, 100*time.Millisecond)
	require.Equal(t, map[string]int{"after-restart": 3}, second.perBatch())

	for _, key := range []string{"id-b1", "id-b2", "id-after-restart"} {
		_, err := marks.Get(ctx, key)
		require.NoError(t, err, "lake bucket marks %s written", key)
	}
	_, err := marks.Get(ctx, "id-never")
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound)
}

// Stopping (SIGTERM, a rolling update) while the outputs hold batches:
// Telegraf flushes the outputs while the inputs stop, and the consumer
// waits for that, so those batches are marked and acknowledged before it
// leaves, and its successor writes none of them again.
func TestStopSettlesWhatTheOutputsHold(t *testing.T) {
	c := newStreamCluster(t)
	js, ctx := c.js, c.ctx
	s, out := c.startHolding("s", nil)

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.Stop()
	}()
	select {
	case <-stopped:
		t.Fatal("Stop returned while the outputs held batches")
	case <-time.After(300 * time.Millisecond):
	}
	out.release() // the outputs' last flush
	select {
	case <-stopped:
	case <-time.After(drainTimeout):
		t.Fatal("Stop did not return once the outputs wrote")
	}

	for i := range 4 {
		_, err := c.marks.Get(ctx, fmt.Sprintf("id-s%d", i))
		require.NoError(t, err, "batch s%d marked written", i)
	}
	cons, err := js.Consumer(ctx, telemetrystream.DefaultStream, "tkgi-lake")
	require.NoError(t, err)
	info, err := cons.Info(ctx)
	require.NoError(t, err)
	require.Zero(t, info.NumAckPending, "every batch acknowledged before Stop returned")
	require.Zero(t, info.NumPending)
	require.Equal(t, map[string]int64{"batches_written": 4, "metrics_written": 8}, s.stats.counters())
}

// The lake bucket out of reach right after the outputs wrote (two of three
// NATS servers down: no quorum for the bucket, the stream or the consumer,
// so the acknowledgements fail too): the marks are tried until the servers
// are back, and no batch is written twice, though ack_wait passed
// meanwhile. The acknowledgements themselves wait for the consumer's own
// leader, which NATS can take a minute or more to elect again after such
// a loss; a batch delivered before then is skipped by its mark
// (TestConsumerWritesEachBatchOnce covers the skip).
func TestMarksOutlastALostQuorum(t *testing.T) {
	quickMarkRetries(t)
	c := newStreamCluster(t)
	cluster, ctx := c.Cluster, c.ctx
	s, out := c.startHolding("q", func(s *Stream) { s.AckWait = config.Duration(2 * time.Second) })
	defer s.Stop()

	cluster.Kill(0)
	cluster.Kill(1)
	out.release() // written while no mark can be put
	require.Eventually(t, func() bool { return s.stats.counters()["lake_bucket_errors"] >= 4 }, time.Minute, 50*time.Millisecond,
		"every batch's mark failed at least once")
	time.Sleep(time.Duration(s.AckWait)) // ack_wait passes while the marks fail
	cluster.Restart(0)
	cluster.Restart(1)

	require.Eventually(t, func() bool {
		for i := range 4 {
			if _, err := c.marks.Get(ctx, fmt.Sprintf("id-q%d", i)); err != nil {
				return false
			}
		}
		return true
	}, time.Minute, 100*time.Millisecond, "the marks never landed")
	// Deliveries again, due since ack_wait passed, come within it.
	time.Sleep(3 * time.Duration(s.AckWait))
	require.Equal(t, map[string]int{"q0": 2, "q1": 2, "q2": 2, "q3": 2}, out.perBatch(), "each batch written once")
	require.Equal(t, int64(4), s.stats.counters()["batches_written"])
}
