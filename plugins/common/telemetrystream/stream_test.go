package telemetrystream

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/testutil"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testnats"
)

// On a real cluster: the stream is created with the settings; an
// operator's limits survive a replica starting; configured limits win; a
// full stream refuses new messages instead of dropping unread ones.
func TestEnsureStreamKeepsOperatorLimits(t *testing.T) {
	cluster := testnats.Start(t)
	_, js := cluster.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ensure := func(set func(*Config)) jetstream.StreamConfig {
		t.Helper()
		c := Config{Servers: cluster.URLs()}
		c.SetDefaults()
		if set != nil {
			set(&c)
		}
		require.NoError(t, c.Validate("jetstream"))
		s, err := c.EnsureStream(ctx, js)
		require.NoError(t, err)
		info, err := s.Info(ctx)
		require.NoError(t, err)
		return info.Config
	}

	created := ensure(nil)
	require.Equal(t, []string{DefaultSubject}, created.Subjects)
	require.Equal(t, DefaultReplicas, created.Replicas)
	require.Equal(t, DefaultDuplicateWindow, created.Duplicates)
	require.Equal(t, jetstream.DiscardNew, created.Discard)
	require.Zero(t, created.MaxAge, "no age limit unless configured")

	// The operator limits the stream with the NATS CLI's equivalent.
	edited := created
	edited.MaxAge = time.Hour
	edited.MaxBytes = 64 << 20
	_, err := js.UpdateStream(ctx, edited)
	require.NoError(t, err)

	kept := ensure(nil)
	require.Equal(t, time.Hour, kept.MaxAge, "a replica starting keeps the operator's age limit")
	require.Equal(t, int64(64<<20), kept.MaxBytes)

	configured := ensure(func(c *Config) { c.MaxAge = config.Duration(2 * time.Hour); c.MaxBytes = 2 << 20 })
	require.Equal(t, 2*time.Hour, configured.MaxAge, "a configured limit wins")
	require.Equal(t, int64(2<<20), configured.MaxBytes)

	// Full: the publish is refused (the listener answers 503), nothing
	// stored is dropped.
	var stored int
	var refused error
	for i := range 64 {
		msg, err := Encode(DefaultSubject, Batch{ID: fmt.Sprintf("m%d", i)}, 0)
		require.NoError(t, err)
		msg.Data = make([]byte, 100<<10)
		if _, refused = js.PublishMsg(ctx, msg); refused != nil {
			break
		}
		stored++
	}
	require.Error(t, refused, "a full stream refuses")
	require.Contains(t, refused.Error(), "maximum bytes exceeded")
	require.True(t, StreamFull(refused), "recognised as the stream being full")
	s, err := js.Stream(ctx, DefaultStream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), info.State.FirstSeq, "the first message is still there")
	t.Logf("%d messages of 100 KiB stored before the 2 MiB stream refused: %v", stored, refused)
}

func TestValidateLimits(t *testing.T) {
	for _, tt := range []struct {
		name    string
		set     func(*Config)
		wantErr string
	}{
		{name: "none", set: func(*Config) {}},
		{name: "age and size", set: func(c *Config) { c.MaxAge = config.Duration(72 * time.Hour); c.MaxBytes = 50 << 30 }},
		{name: "age under the duplicate window", set: func(c *Config) { c.MaxAge = config.Duration(time.Minute) }, wantErr: "x.max_age 1m0s must be at least duplicate_window"},
		{name: "negative age", set: func(c *Config) { c.MaxAge = -1 }, wantErr: "x.max_age"},
		{name: "tiny size", set: func(c *Config) { c.MaxBytes = 1000 }, wantErr: "x.max_bytes 1000 must be at least 1MiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Servers: []string{"nats://a:4222"}}
			c.SetDefaults()
			tt.set(&c)
			err := c.Validate("x")
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// Three replicas starting together each set the stream and a bucket up, in
// short tries as the listener does: all are ready within a few tries. (A
// replicated stream's or bucket's concurrent creates and updates can stall
// until their timeout; an existing one as wanted is not updated again.)
func TestEnsureConcurrently(t *testing.T) {
	cluster := testnats.Start(t)
	start := time.Now()
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			c := Config{Servers: cluster.URLs()}
			c.SetDefaults()
			nc, js, err := c.Connect("replica", testutil.Logger{Quiet: true})
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			for tries := 1; ; tries++ {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := c.EnsureStream(ctx, js)
				if err == nil {
					_, err = c.EnsureBucket(ctx, js, "TKGI_TEST_KEYS", "test keys", time.Hour)
				}
				cancel()
				if err == nil || tries == 5 {
					errs <- err
					return
				}
				time.Sleep(time.Second + rand.N(time.Second))
			}
		}()
	}
	for range 3 {
		require.NoError(t, <-errs)
	}
	t.Logf("three replicas set up in %s", time.Since(start).Round(time.Millisecond))
}
