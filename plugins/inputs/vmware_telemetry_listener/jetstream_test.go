package vmware_telemetry_listener

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/testutil"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/nodebatch"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testnats"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetrystream"
)

func TestJetStreamInit(t *testing.T) {
	for _, tt := range []struct {
		name    string
		js      JetStream
		dedup   string
		wantErr string
	}{
		{name: "servers and defaults", js: JetStream{Config: telemetrystream.Config{Servers: []string{"nats://n:4222"}}}},
		{name: "no servers", js: JetStream{}, wantErr: "jetstream.servers is empty"},
		{name: "too many replicas", js: JetStream{Config: telemetrystream.Config{Servers: []string{"nats://n:4222"}, Replicas: 6}}, wantErr: "replicas 6 must be 1 to 5"},
		{name: "wildcard subject", js: JetStream{Config: telemetrystream.Config{Servers: []string{"nats://n:4222"}, Subject: "tkgi.>"}}, wantErr: "no wildcards"},
		{name: "message size too small", js: JetStream{Config: telemetrystream.Config{Servers: []string{"nats://n:4222"}}, MaxMessageSize: 1000}, wantErr: "jetstream.max_message_size 1000"},
		{name: "message size too large", js: JetStream{Config: telemetrystream.Config{Servers: []string{"nats://n:4222"}}, MaxMessageSize: 128 << 20}, wantErr: "between 64KiB and 64MiB"},
		{
			name: "dedup_file beside jetstream", js: JetStream{Config: telemetrystream.Config{Servers: []string{"nats://n:4222"}}},
			dedup: "/var/lib/x.log", wantErr: "dedup_file and jetstream are both set",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := inputs.Inputs["vmware_telemetry_listener"]().(*Listener)
			l.Log = testutil.Logger{Quiet: true}
			l.AllowAnonymous = true
			l.DedupFile = tt.dedup
			js := tt.js
			l.JetStream = &js
			err := l.Init()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, telemetrystream.DefaultStream, l.JetStream.Stream)
			require.Equal(t, 3, l.JetStream.Replicas)
			require.Equal(t, telemetrystream.DefaultDedupBucket, l.JetStream.DedupBucket)
			require.Equal(t, config.Size(defaultMaxMessageSize), l.JetStream.MaxMessageSize)
		})
	}
}

// requireBucketValue waits until the key bucket holds want for key ("":
// no key). A bucket's gets may be answered by any of its servers (direct
// gets), and one a write has not reached yet answers the value before it
// for some milliseconds.
func requireBucketValue(t *testing.T, ctx context.Context, kv jetstream.KeyValue, key, want string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		entry, err := kv.Get(ctx, key)
		if want == "" {
			assert.ErrorIs(c, err, jetstream.ErrKeyNotFound, "key %s", key)
			return
		}
		if assert.NoError(c, err, "key %s", key) {
			assert.Equal(c, want, string(entry.Value()), "key %s", key)
		}
	}, 5*time.Second, 20*time.Millisecond)
}

// Two replicas on one real NATS cluster answer the agents as one server.
func TestJetStreamReplicasShareBatchKeys(t *testing.T) {
	cluster := testnats.Start(t)
	_, js := cluster.Connect()
	replica := func() *testServer {
		return startListener(t, func(l *Listener) {
			l.JetStream = &JetStream{Config: telemetrystream.Config{Servers: cluster.URLs()}}
		})
	}
	a, b := replica(), replica()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	batch := zstdBytes(t, validBatch(3))
	send := func(s *testServer, key string) (*http.Response, string) {
		return s.do(post{body: batch, encoding: "zstd", key: key})
	}
	claimID := func(key string) string {
		dk := newDedupKey("batches", "tkgi-agent", testInstance, key)
		return hex.EncodeToString(dk[:])
	}
	bucket := func() jetstream.KeyValue {
		kv, err := js.KeyValue(ctx, telemetrystream.DefaultDedupBucket)
		require.NoError(t, err)
		return kv
	}

	t.Run("stored on one replica is a duplicate on the other", func(t *testing.T) {
		resp, body := send(a, "k-stored")
		require.Equal(t, http.StatusCreated, resp.StatusCode, body)
		resp, body = send(b, "k-stored")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, "true", resp.Header.Get(telemetry.HeaderDuplicate))

		// Once in the stream, with its identity, and nothing handed to
		// the replicas' own outputs.
		msgs := streamMessages(t, ctx, js)
		var found []telemetrystream.Batch
		for _, m := range msgs {
			if m.Key == "k-stored" {
				found = append(found, m)
			}
		}
		require.Len(t, found, 1)
		require.Equal(t, claimID("k-stored"), found[0].ID)
		require.Len(t, found[0].Metrics, 3)
		for _, m := range found[0].Metrics {
			key, _ := m.GetField(fieldBatchKey)
			require.Equal(t, "k-stored", key)
			require.Equal(t, testInstance, m.Tags()[tagInstance])
		}
		require.Empty(t, a.pipe.GetTelegrafMetrics())
		require.Empty(t, b.pipe.GetTelegrafMetrics())
	})

	t.Run("in flight on another replica is answered 503 with Retry-After", func(t *testing.T) {
		claim := fmt.Sprintf("claim other-replica %d", time.Now().Add(time.Hour).UnixNano())
		_, err := bucket().Create(ctx, claimID("k-inflight"), []byte(claim))
		require.NoError(t, err)
		resp, body := send(b, "k-inflight")
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
		require.Contains(t, body, "being stored")
		require.Equal(t, "5", resp.Header.Get("Retry-After"))
	})

	t.Run("a dead replica's claim is taken over after its deadline", func(t *testing.T) {
		claim := fmt.Sprintf("claim dead-replica %d", time.Now().Add(-time.Second).UnixNano())
		_, err := bucket().Create(ctx, claimID("k-orphan"), []byte(claim))
		require.NoError(t, err)
		resp, body := send(a, "k-orphan")
		require.Equal(t, http.StatusCreated, resp.StatusCode, body)
		requireBucketValue(t, ctx, bucket(), claimID("k-orphan"), claimStored)
	})

	t.Run("a refused batch releases its claim", func(t *testing.T) {
		resp, body := a.do(post{body: []byte("not line protocol"), key: "k-bad"})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
		requireBucketValue(t, ctx, bucket(), claimID("k-bad"), "")
	})

	t.Run("a batch over max_message_size is answered 413 and its claim released", func(t *testing.T) {
		small := startListener(t, func(l *Listener) {
			l.JetStream = &JetStream{Config: telemetrystream.Config{Servers: cluster.URLs()}, MaxMessageSize: 64 << 10}
		})
		// Node pseudonyms that do not repeat: at least their 6 random
		// bytes of zstd a line, so 20,000 lines are well over 64 KiB.
		rng := rand.New(rand.NewPCG(1, 2))
		node := func(int) string { return nodebatch.Pseudonym(rng.Uint64() >> (64 - 4*telemetry.PseudonymLength)) }
		big := zstdBytes(t, nodebatch.Lines(nodebatch.Pseudonym(7), node, 1, 20000))
		resp, body := small.do(post{body: big, encoding: "zstd", key: "k-big"})
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, body)
		require.Contains(t, body, "batch of 20000 metrics")
		requireBucketValue(t, ctx, bucket(), claimID("k-big"), "")
		// A part of it fits: what the agent does after a 413 is split.
		resp, body = small.do(post{body: zstdBytes(t, nodebatch.Lines(nodebatch.Pseudonym(7), node, 2, 1000)), encoding: "zstd", key: "k-half"})
		require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	})

	t.Run("engine down: 503 with Retry-After, stored once it is back", func(t *testing.T) {
		for i := range 3 {
			cluster.Kill(i)
		}
		resp, body := send(a, "k-outage")
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
		require.NotEmpty(t, resp.Header.Get("Retry-After"))
		for i := range 3 {
			cluster.Restart(i)
		}
		cluster.WaitJetStream(time.Minute)
		require.Eventually(t, func() bool {
			resp, _ := send(b, "k-outage")
			return resp.StatusCode == http.StatusCreated
		}, time.Minute, 250*time.Millisecond)
		resp, body = send(a, "k-outage")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
	})
}

// streamMessages reads every message of the stream.
func streamMessages(t *testing.T, ctx context.Context, js jetstream.JetStream) []telemetrystream.Batch {
	t.Helper()
	s, err := js.Stream(ctx, telemetrystream.DefaultStream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	dec, err := telemetrystream.NewDecoder(1<<20, 1<<16)
	require.NoError(t, err)
	var out []telemetrystream.Batch
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil && strings.Contains(err.Error(), "not found") {
			continue
		}
		require.NoError(t, err)
		b, err := dec.Decode(raw.Header, raw.Data)
		require.NoError(t, err)
		out = append(out, b)
	}
	return out
}
