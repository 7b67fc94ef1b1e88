package vmware_telemetry_stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetrystream"
)

func TestRelayInit(t *testing.T) {
	for _, tt := range []struct {
		name    string
		set     func(*Stream)
		wantErr string
	}{
		{name: "own durable and an https url", set: func(*Stream) {}},
		{name: "the lake's durable", set: func(s *Stream) { s.Durable = "tkgi-lake" }, wantErr: "give the relay its own consumer"},
		{name: "no url", set: func(s *Stream) { s.Relay.URL = "" }, wantErr: "relay.url"},
		{name: "url without scheme", set: func(s *Stream) { s.Relay.URL = "telemetry.example.com/ph" }, wantErr: "relay.url"},
		{name: "backoff under a second", set: func(s *Stream) { s.Relay.MaxBackoff = config.Duration(time.Millisecond) }, wantErr: "relay.max_backoff"},
		{name: "events to the upstream's events endpoint", set: func(s *Stream) {
			s.Relay.EventsURL = "https://telemetry.example.com/ph/api/hyper/events"
			s.Relay.EventsToken = config.NewSecret([]byte("upstream-events-token"))
		}},
		{name: "events_url not a url", set: func(s *Stream) { s.Relay.EventsURL = "/ph/api/hyper/events" }, wantErr: "relay.events_url \"/ph/api/hyper/events\" must be"},
		{name: "events_url the batches' url", set: func(s *Stream) { s.Relay.EventsURL = s.Relay.URL }, wantErr: "relay.events_url \"https://telemetry.example.com/ph/api/hyper/send\" is relay.url"},
		{name: "events_token without events_url", set: func(s *Stream) { s.Relay.EventsToken = config.NewSecret([]byte("upstream-events-token")) }, wantErr: "relay.events_token is set but relay.events_url is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := inputs.Inputs["vmware_telemetry_stream"]().(*Stream)
			s.Servers = []string{"nats://127.0.0.1:4222"}
			s.Durable = "tkgi-relay"
			s.Relay = &Relay{URL: "https://telemetry.example.com" + telemetry.DefaultPath}
			tt.set(s)
			err := s.Init()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, config.Duration(time.Minute), s.Relay.MaxBackoff)
			require.Equal(t, config.Duration(30*time.Second), s.Relay.Timeout)
		})
	}
}

func stamped(collector, instance, level string, fields map[string]any) telegraf.Metric {
	m := metric.New("kube_telemetry_nodes", map[string]string{"cluster_uid": "c1"}, fields, time.Unix(1_700_000_000, 0))
	m.AddTag(stampCollector, collector)
	m.AddTag(stampInstance, instance)
	m.AddTag(stampLevel, level)
	m.AddField(stampReceiveTime, int64(42))
	m.AddField(stampBatchKey, "k1")
	return m
}

func TestUnstamp(t *testing.T) {
	const inst = "0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		name    string
		metrics []telegraf.Metric
		wantErr string
	}{
		{name: "identity from the stamps, metrics as the agent sent them", metrics: []telegraf.Metric{
			stamped("tkgi-agent", inst, "standard", map[string]any{"total": int64(3)}),
			stamped("tkgi-agent", inst, "standard", map[string]any{"total": int64(4)}),
		}},
		{name: "no metrics", wantErr: "no metrics"},
		{name: "not stamped", metrics: []telegraf.Metric{
			metric.New("m", nil, map[string]any{"v": int64(1)}, time.Unix(1, 0)),
		}, wantErr: "lacks the listener's"},
		{name: "two senders in one batch", metrics: []telegraf.Metric{
			stamped("tkgi-agent", inst, "standard", map[string]any{"total": int64(3)}),
			stamped("tkgi-agent", inst, "enhanced", map[string]any{"total": int64(4)}),
		}, wantErr: "mixes senders or levels"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := unstamp(telemetrystream.Batch{ID: "id", Key: "k1", Metrics: tt.metrics})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "k1", u.key)
			require.Equal(t, "tkgi-agent", u.collector)
			require.Equal(t, inst, u.instance)
			require.Equal(t, "standard", u.level)
			require.Equal(t, 2, u.n)
			dec, err := telemetry.NewDecoder(1<<20, 1<<16)
			require.NoError(t, err)
			got, _, err := dec.Decode(u.body, telemetry.EncodingZstd, time.Now())
			require.NoError(t, err)
			require.Len(t, got, 2)
			for i, m := range got {
				require.Equal(t, map[string]string{"cluster_uid": "c1"}, m.Tags(), "no stamp tags upstream")
				require.Equal(t, map[string]any{"total": int64(3 + i)}, m.Fields(), "no stamp fields upstream")
			}
			// The stored metrics keep their stamps (the relay copies).
			require.True(t, tt.metrics[0].HasTag(stampCollector))
		})
	}
}

// settledMsg is a stream message that records how it was settled.
type settledMsg struct {
	data     []byte
	header   nats.Header
	how      string
	delay    time.Duration
	progress int // InProgress calls
}

func (m *settledMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return nil, errors.New("no metadata")
}
func (m *settledMsg) Data() []byte                       { return m.data }
func (m *settledMsg) Headers() nats.Header               { return m.header }
func (*settledMsg) Subject() string                      { return "s" }
func (*settledMsg) Reply() string                        { return "" }
func (m *settledMsg) Ack() error                         { m.how = "ack"; return nil }
func (m *settledMsg) DoubleAck(context.Context) error    { m.how = "ack"; return nil }
func (m *settledMsg) Nak() error                         { m.how = "nak"; return nil }
func (m *settledMsg) NakWithDelay(d time.Duration) error { m.how, m.delay = "nak", d; return nil }
func (m *settledMsg) InProgress() error                  { m.progress++; return nil }
func (m *settledMsg) Term() error                        { m.how = "term"; return nil }
func (m *settledMsg) TermWithReason(string) error        { m.how = "term"; return nil }

// upstreamRequest is what the upstream received.
type upstreamRequest struct {
	path, query, auth, contentType, encoding, key, level string
	body                                                 []byte
}

func TestForward(t *testing.T) {
	const inst = "0123456789abcdef0123456789abcdef"
	at := time.Date(2026, 12, 2, 10, 0, 0, 5, time.UTC)
	batch := []telegraf.Metric{stamped("tkgi-agent", inst, "standard", map[string]any{"total": int64(3)})}
	event := metric.New(telemetry.EventMeasurement,
		map[string]string{"event_type": "cluster.create.succeeded", "severity": "warning", "source": "tkgi-api"},
		map[string]any{"event_id": "e-1", "plan": "small", "worker_nodes": int64(3), "ratio": 1.0, "upgrade": false}, at)
	stampedEvent := event.Copy()
	stampedEvent.AddTag(stampCollector, "tkgi-api")
	stampedEvent.AddTag(stampInstance, "api-1")
	stampedEvent.AddTag(stampLevel, "standard")
	stampedEvent.AddField(stampReceiveTime, int64(42))
	stampedEvent.AddField(stampBatchKey, "k1")

	for _, tt := range []struct {
		name      string
		events    bool
		eventsURL bool
		status    int
		header    map[string]string
		failures  int // this worker's failures before
		down      bool
		want      string // ack, nak or term
		wantWait  time.Duration
		wantPath  string // "" when nothing reaches the upstream
		wantLog   string
	}{
		{name: "batch stored: acknowledged", status: 201, want: "ack", wantPath: telemetry.DefaultPath},
		{name: "batch the upstream had: acknowledged", status: 200, header: map[string]string{telemetry.HeaderDuplicate: "true"}, want: "ack", wantPath: telemetry.DefaultPath},
		{name: "events relayed to the events endpoint", events: true, eventsURL: true, status: 201, want: "ack", wantPath: "/events"},
		{name: "events kept without events_url: acknowledged, not posted", events: true, want: "ack"},
		{name: "503 with Retry-After: sent back for that long", status: 503, header: map[string]string{"Retry-After": "7"},
			want: "nak", wantWait: 7 * time.Second, wantPath: telemetry.DefaultPath, wantLog: "keeping it in the stream, retrying in 7s"},
		{name: "503 with Retry-After beyond max_backoff: capped", status: 503, header: map[string]string{"Retry-After": "3600"},
			want: "nak", wantWait: 30 * time.Second, wantPath: telemetry.DefaultPath},
		{name: "503 without Retry-After: backoff", status: 503, want: "nak", wantWait: time.Second, wantPath: telemetry.DefaultPath, wantLog: "the upstream answered 503"},
		{name: "503 without Retry-After again: longer backoff", status: 503, failures: 2, want: "nak", wantWait: 4 * time.Second, wantPath: telemetry.DefaultPath},
		{name: "events 503 with Retry-After", events: true, eventsURL: true, status: 503, header: map[string]string{"Retry-After": "2"},
			want: "nak", wantWait: 2 * time.Second, wantPath: "/events"},
		{name: "401: kept, the token may be fixed", status: 401, want: "nak", wantWait: time.Second, wantPath: telemetry.DefaultPath},
		{name: "no answer: kept", down: true, want: "nak", wantWait: time.Second, wantLog: "posting batch"},
		{name: "400: terminated", status: 400, want: "term", wantPath: telemetry.DefaultPath, wantLog: "will never take it"},
		{name: "422: terminated", status: 422, want: "term", wantPath: telemetry.DefaultPath, wantLog: "the upstream answered 422"},
		{name: "events 422: terminated", events: true, eventsURL: true, status: 422, want: "term", wantPath: "/events", wantLog: "event schema"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []upstreamRequest
			var mu sync.Mutex
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				got = append(got, upstreamRequest{
					path: r.URL.Path, query: r.URL.RawQuery, auth: r.Header.Get("Authorization"),
					contentType: r.Header.Get("Content-Type"), encoding: r.Header.Get("Content-Encoding"),
					key: r.Header.Get(telemetry.HeaderIdempotencyKey), level: r.Header.Get(telemetry.HeaderLevel), body: body,
				})
				mu.Unlock()
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				fmt.Fprintln(w, "answer")
			}))
			defer srv.Close()
			if tt.down {
				srv.Close()
			}

			log := &testutil.CaptureLogger{}
			s := inputs.Inputs["vmware_telemetry_stream"]().(*Stream)
			s.Servers = []string{"nats://127.0.0.1:4222"}
			s.Durable = "tkgi-relay"
			s.Log = log
			s.Relay = &Relay{URL: srv.URL + telemetry.DefaultPath, Token: config.NewSecret([]byte("batches-token")), MaxBackoff: config.Duration(30 * time.Second)}
			if tt.eventsURL {
				s.Relay.EventsURL = srv.URL + "/events"
				s.Relay.EventsToken = config.NewSecret([]byte("events-token"))
			}
			require.NoError(t, s.Init())

			b := telemetrystream.Batch{ID: "id1", Key: "k1", Events: tt.events, Metrics: batch}
			if tt.events {
				b.Metrics = []telegraf.Metric{stampedEvent}
			}
			nm, err := telemetrystream.Encode("s", b, 0)
			require.NoError(t, err)
			msg := &settledMsg{data: nm.Data, header: nm.Header}

			failures := tt.failures
			r := &relayer{s: s, client: srv.Client()}
			wait := r.forward(context.Background(), msg, &failures)
			require.Equal(t, tt.want, msg.how)
			require.Equal(t, tt.wantWait, wait)
			if tt.want == "nak" {
				require.Equal(t, tt.wantWait, msg.delay)
				require.Equal(t, tt.failures+1, failures)
			} else {
				require.Zero(t, failures)
			}
			if tt.wantLog != "" {
				all := append(log.Warnings(), log.Errors()...)
				require.NotEmpty(t, all)
				require.Contains(t, strings.Join(all, "\n"), tt.wantLog)
			}

			mu.Lock()
			defer mu.Unlock()
			if tt.wantPath == "" {
				require.Empty(t, got, "nothing posted upstream")
				return
			}
			require.Len(t, got, 1)
			req := got[0]
			require.Equal(t, tt.wantPath, req.path)
			require.Equal(t, "k1", req.key)
			require.Equal(t, "standard", req.level)
			require.Equal(t, telemetry.EncodingZstd, req.encoding)
			dec, err := telemetry.NewDecoder(1<<20, 1<<16)
			require.NoError(t, err)
			if !tt.events {
				require.Equal(t, "Bearer batches-token", req.auth)
				require.Equal(t, telemetry.ContentType, req.contentType)
				require.Equal(t, "_c=tkgi-agent&_i="+inst, req.query)
				return
			}
			require.Equal(t, "Bearer events-token", req.auth, "the events token, never the batches'")
			require.Equal(t, telemetry.EventContentType, req.contentType)
			require.Equal(t, "_c=tkgi-api&_i=api-1", req.query)
			// The upstream's listener makes the event the installation stored.
			src, closeFn, err := dec.Open(bytes.NewReader(req.body), telemetry.EncodingZstd)
			require.NoError(t, err)
			defer closeFn()
			var docs []json.RawMessage
			require.NoError(t, json.NewDecoder(src).Decode(&docs))
			require.Len(t, docs, 1)
			upstream, err := telemetry.ParseEvent(docs[0], time.Now())
			require.NoError(t, err)
			testutil.RequireMetricsEqual(t, []telegraf.Metric{event}, []telegraf.Metric{upstream})
		})
	}
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		failures int
		want     time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {4, 8 * time.Second}, {7, 30 * time.Second}, {100, 30 * time.Second},
	} {
		require.Equal(t, tt.want, backoff(tt.failures, 30*time.Second), "after %d failures", tt.failures)
	}
}

// splittingUpstream answers like a listener whose limit is maxMetrics per
// request: 413 above it, 201 for a key it has not stored, 200 duplicate
// for one it has; the posts listed in fail (counted from 1) get a 503.
type splittingUpstream struct {
	maxMetrics int
	fail       map[int]bool

	mu     sync.Mutex
	posts  int
	stored map[string][]string // key -> the metrics' total fields, as posted
}

func (u *splittingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.posts++
	n, err := strconv.Atoi(r.Header.Get(telemetry.HeaderMetricCount))
	switch {
	case err != nil:
		w.WriteHeader(http.StatusBadRequest)
		return
	case u.fail[u.posts]:
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case n > u.maxMetrics:
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		fmt.Fprintf(w, "batch of %d metrics is over the limit", n)
		return
	}
	key := r.Header.Get(telemetry.HeaderIdempotencyKey)
	if _, ok := u.stored[key]; ok {
		w.Header().Set(telemetry.HeaderDuplicate, "true")
		w.WriteHeader(http.StatusOK)
		return
	}
	dec, err := telemetry.NewDecoder(1<<20, 1<<16)
	if err != nil {
		panic(err)
	}
	src, closeFn, err := dec.Open(r.Body, r.Header.Get("Content-Encoding"))
	if err != nil {
		panic(err)
	}
	defer closeFn()
	body, _ := io.ReadAll(src)
	var totals []string
	for _, f := range strings.Fields(string(body)) {
		for _, kv := range strings.Split(f, ",") {
			if v, ok := strings.CutPrefix(kv, "total="); ok {
				totals = append(totals, v)
			}
		}
	}
	if len(totals) != n {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	u.stored[key] = totals
	w.WriteHeader(http.StatusCreated)
}

// A batch the upstream finds too large is relayed in halves, down to
// single metrics; every metric reaches the upstream once, and a message
// delivered again after a failure midway is cut into the same keys, so
// the parts stored before are answered duplicate.
func TestForwardSplitsWhatTheUpstreamFindsTooLarge(t *testing.T) {
	const inst, key = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	for _, tt := range []struct {
		name       string
		metrics    int
		maxMetrics int
		fail       map[int]bool
		want       []string // how the message is settled, delivery after delivery
		wantParts  []int    // the sizes of the stored parts, in order
		wantPosts  int
		refused    int64
	}{
		{name: "within the limit: one post", metrics: 10, maxMetrics: 10, want: []string{"ack"}, wantParts: []int{10}, wantPosts: 1},
		{name: "over it: halves, and halves of halves", metrics: 10, maxMetrics: 3, want: []string{"ack"},
			wantParts: []int{2, 3, 2, 3}, wantPosts: 7},
		{name: "a 503 midway: the stored parts are answered duplicate next time", metrics: 10, maxMetrics: 3,
			fail: map[int]bool{5: true}, want: []string{"nak", "ack"}, wantParts: []int{2, 3, 2, 3}, wantPosts: 5 + 7},
		{name: "no single metric fits: each refused, the message terminated", metrics: 2, maxMetrics: 0,
			want: []string{"term"}, wantPosts: 3, refused: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := &splittingUpstream{maxMetrics: tt.maxMetrics, fail: tt.fail, stored: map[string][]string{}}
			srv := httptest.NewServer(up)
			defer srv.Close()
			log := &testutil.CaptureLogger{}
			s := newTestStream(t, []string{"nats://127.0.0.1:4222"})
			s.Durable = "tkgi-relay"
			s.Log = log
			s.Relay = &Relay{URL: srv.URL + telemetry.DefaultPath, MaxBackoff: config.Duration(30 * time.Second)}
			require.NoError(t, s.Init())

			var batch []telegraf.Metric
			for i := range tt.metrics {
				batch = append(batch, stamped("tkgi-agent", inst, "standard", map[string]any{"total": int64(i)}))
			}
			nm, err := telemetrystream.Encode("s", telemetrystream.Batch{ID: "id1", Key: key, Metrics: batch}, 0)
			require.NoError(t, err)
			r := &relayer{s: s, client: srv.Client()}
			failures := 0
			progress := 0
			for _, want := range tt.want {
				msg := &settledMsg{data: nm.Data, header: nm.Header}
				r.forward(context.Background(), msg, &failures)
				require.Equal(t, want, msg.how)
				progress += msg.progress
			}
			// Every post but each delivery's first (the whole batch) is of
			// a half, and tells the stream the message is in progress.
			require.Equal(t, tt.wantPosts-len(tt.want), progress, "InProgress before each half")

			up.mu.Lock()
			defer up.mu.Unlock()
			require.Equal(t, tt.wantPosts, up.posts)
			var sizes []int
			seen := map[string]int{}
			for k, totals := range up.stored {
				require.Regexp(t, "^[0-9a-f]{32}$", k, "a part's key is 32 hex digits, as the agent's")
				if len(tt.wantParts) > 1 {
					require.NotEqual(t, key, k, "a part has a key of its own")
				}
				sizes = append(sizes, len(totals))
				for _, v := range totals {
					seen[v]++
				}
			}
			if len(tt.wantParts) == 1 {
				require.Contains(t, up.stored, key, "a batch within the limit keeps the agent's key")
			}
			require.ElementsMatch(t, tt.wantParts, sizes)
			if tt.refused == 0 {
				require.Len(t, seen, tt.metrics)
			}
			for v, n := range seen {
				require.Equal(t, 1, n, "metric %s stored %d times", v, n)
			}
			require.Equal(t, tt.refused, s.stats.batchesRefused.Get())
			if len(tt.wantParts) > 1 {
				var infos []string
				for _, e := range log.Messages() {
					infos = append(infos, e.Text)
				}
				require.Contains(t, strings.Join(infos, "\n"), "too large for the upstream (413): relaying it in halves")
			}
			if tt.refused > 0 {
				require.Contains(t, strings.Join(log.Errors(), "\n"), "its one metric is over the upstream's size limit")
			}
		})
	}
}
