// Package telemetrystream is the hand-off between the telemetry server's
// listener replicas and the lake consumer on NATS JetStream, written once
// for both: the connection settings, the stream, and the message a stored
// batch becomes (zstd line protocol, its batch identity in headers).
package telemetrystream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	common_tls "github.com/influxdata/telegraf/plugins/common/tls"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// Defaults shared by the listener and the consumer, so the two meet on the
// same stream without configuration.
const (
	DefaultStream          = "TKGI_TELEMETRY"
	DefaultSubject         = "tkgi.telemetry.batches"
	DefaultReplicas        = 3
	DefaultDuplicateWindow = 10 * time.Minute
	// DefaultDedupBucket is the listener replicas' shared key bucket;
	// JetStream keeps it in the stream "KV_" + its name.
	DefaultDedupBucket = "TKGI_TELEMETRY_DEDUP"
)

// Message headers. nats.MsgIdHdr (Nats-Msg-Id) carries Key, so the stream
// itself drops a second publish of the same batch within its duplicate
// window.
const (
	// HeaderBatchKey is the agent's Idempotency-Key, as sent.
	HeaderBatchKey = "Telemetry-Batch-Key"
	// HeaderMetricCount is the number of metrics in the message.
	HeaderMetricCount = telemetry.HeaderMetricCount
	// HeaderEncoding is the payload's compression (always zstd).
	HeaderEncoding = "Content-Encoding"
	// HeaderEndpoint is EndpointEvents on a batch posted to the events
	// path; absent on the batches path's.
	HeaderEndpoint = "Telemetry-Endpoint"
	EndpointEvents = "events"
)

// Config is the connection and stream both sides share.
type Config struct {
	Servers         []string        `toml:"servers"`
	Stream          string          `toml:"stream"`
	Subject         string          `toml:"subject"`
	Replicas        int             `toml:"replicas"`
	DuplicateWindow config.Duration `toml:"duplicate_window"`
	// MaxAge and MaxBytes limit the stream when set; unset, the stream
	// keeps the limits it has (none when this creates it), so limits an
	// operator set with the NATS CLI stay.
	MaxAge      config.Duration `toml:"max_age"`
	MaxBytes    config.Size     `toml:"max_bytes"`
	Credentials string          `toml:"credentials"`
	Username    config.Secret   `toml:"username"`
	Password    config.Secret   `toml:"password"`
	common_tls.ClientConfig
}

// SetDefaults fills what is not set.
func (c *Config) SetDefaults() {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = config.Duration(DefaultDuplicateWindow)
	}
}

// Validate checks the settings without touching the network; prefix names
// the TOML table in messages.
func (c *Config) Validate(prefix string) error {
	if len(c.Servers) == 0 {
		return fmt.Errorf("%s.servers is empty; list the NATS servers, e.g. [\"nats://nats-0:4222\", \"nats://nats-1:4222\", \"nats://nats-2:4222\"]", prefix)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("%s.replicas %d must be 1 to 5 (3 survives one NATS server down)", prefix, c.Replicas)
	}
	if strings.ContainsAny(c.Subject, "*> ") || c.Subject == "" {
		return fmt.Errorf("%s.subject %q must be one literal subject (no wildcards)", prefix, c.Subject)
	}
	if c.DuplicateWindow <= 0 {
		return fmt.Errorf("%s.duplicate_window must be positive", prefix)
	}
	if c.MaxAge < 0 || (c.MaxAge > 0 && c.MaxAge < c.DuplicateWindow) {
		return fmt.Errorf("%s.max_age %s must be at least duplicate_window (%s), or unset for no age limit",
			prefix, time.Duration(c.MaxAge), time.Duration(c.DuplicateWindow))
	}
	if c.MaxBytes != 0 && c.MaxBytes < 1<<20 {
		return fmt.Errorf("%s.max_bytes %d must be at least 1MiB, or unset for no size limit", prefix, c.MaxBytes)
	}
	return nil
}

// Connect connects to the servers. It returns even when none answers yet
// (the client keeps reconnecting), so the server role starts while the
// engine is down and answers 503 until it is up.
func (c *Config) Connect(name string, log telegraf.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warnf("Disconnected from NATS: %v; reconnecting", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Infof("Reconnected to NATS at %s", nc.ConnectedUrlRedacted()) }),
	}
	if c.Credentials != "" {
		opts = append(opts, nats.UserCredentials(c.Credentials))
	}
	if !c.Username.Empty() {
		user, err := c.Username.Get()
		if err != nil {
			return nil, nil, fmt.Errorf("getting username failed: %w", err)
		}
		pass, err := c.Password.Get()
		if err != nil {
			user.Destroy()
			return nil, nil, fmt.Errorf("getting password failed: %w", err)
		}
		opts = append(opts, nats.UserInfo(user.String(), pass.String()))
		user.Destroy()
		pass.Destroy()
	}
	tlsConf, err := c.ClientConfig.TLSConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("tls options: %w", err)
	}
	if tlsConf != nil {
		opts = append(opts, nats.Secure(tlsConf))
	}
	nc, err := nats.Connect(strings.Join(c.Servers, ","), opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to NATS %v failed: %w", c.Servers, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream context: %w", err)
	}
	return nc, js, nil
}

// EnsureStream creates the stream, or updates the settings this package
// owns (subject, replicas, duplicate window, discard policy, and the limits
// when configured) on the stream as it is, keeping whatever else an
// operator set. A full stream refuses new batches (DiscardNew): the
// listener answers 503 and the agents keep them, where discarding old ones
// would drop batches the lake has not read.
func (c *Config) EnsureStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, c.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, c.streamConfig(jetstream.StreamConfig{}))
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			if err != nil {
				return nil, fmt.Errorf("creating stream %q (%d replicas) failed: %w", c.Stream, c.Replicas, err)
			}
			return s, nil
		}
		// Another replica created it meanwhile.
		s, err = js.Stream(ctx, c.Stream)
	}
	if err != nil {
		return nil, fmt.Errorf("reading stream %q failed: %w", c.Stream, err)
	}
	cur := s.CachedInfo().Config
	want := c.streamConfig(cur)
	if sameOwned(cur, want) {
		// Nothing to change: replicas starting together do not all
		// update it (concurrent updates of a replicated stream can stall
		// until their timeout).
		return s, nil
	}
	s, err = js.UpdateStream(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("updating stream %q (%d replicas) failed: %w", c.Stream, c.Replicas, err)
	}
	return s, nil
}

// sameOwned reports whether the settings this package owns are as wanted.
func sameOwned(cur, want jetstream.StreamConfig) bool {
	return cur.Description == want.Description && slices.Equal(cur.Subjects, want.Subjects) &&
		cur.Storage == want.Storage && cur.Replicas == want.Replicas && cur.Duplicates == want.Duplicates &&
		cur.Retention == want.Retention && cur.Discard == want.Discard &&
		cur.MaxAge == want.MaxAge && cur.MaxBytes == want.MaxBytes
}

// streamConfig is cur with the settings this package owns.
func (c *Config) streamConfig(cur jetstream.StreamConfig) jetstream.StreamConfig {
	cfg := cur
	cfg.Name = c.Stream
	cfg.Description = "telemetry batches stored by the listener replicas, each once, for the lake consumer"
	cfg.Subjects = []string{c.Subject}
	cfg.Storage = jetstream.FileStorage
	cfg.Replicas = c.Replicas
	cfg.Duplicates = time.Duration(c.DuplicateWindow)
	cfg.Retention = jetstream.LimitsPolicy
	cfg.Discard = jetstream.DiscardNew
	if c.MaxAge > 0 {
		cfg.MaxAge = time.Duration(c.MaxAge)
	}
	if c.MaxBytes > 0 {
		cfg.MaxBytes = int64(c.MaxBytes)
	}
	return cfg
}

// Error codes of a store that cannot take a message: the stream's own
// limit (JetStream's "maximum bytes/messages exceeded" store failure) or
// the servers' storage (insufficient resources).
const (
	errCodeStoreFailed           = 10077
	errCodeInsufficientResources = 10023
)

// StreamFull reports whether err is a publish refused because the stream,
// or the servers' storage, is full.
func StreamFull(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == errCodeStoreFailed || apiErr.ErrorCode == errCodeInsufficientResources
}

// EnsureBucket creates a key-value bucket whose keys live ttl, replicated
// like the stream.
func (c *Config) EnsureBucket(ctx context.Context, js jetstream.JetStream, bucket, what string, ttl time.Duration) (jetstream.KeyValue, error) {
	// An existing bucket as wanted is used as is: replicas starting
	// together do not all update it.
	if kv, err := js.KeyValue(ctx, bucket); err == nil {
		if st, err := kv.Status(ctx); err == nil && st.TTL() == ttl && st.History() == 1 {
			if info, ok := st.(*jetstream.KeyValueBucketStatus); !ok || info.StreamInfo().Config.Replicas == c.Replicas {
				return kv, nil
			}
		}
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("reading key-value bucket %q (%s) failed: %w", bucket, what, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: what,
		TTL:         ttl,
		Replicas:    c.Replicas,
		Storage:     jetstream.FileStorage,
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("creating key-value bucket %q (%s) failed: %w", bucket, what, err)
	}
	return kv, nil
}

// ErrTooLarge is a batch whose message would pass the limit (the
// listener's max_message_size or the NATS servers' max_payload); the
// listener answers 413 so the agent splits it.
var ErrTooLarge = errors.New("larger than a message may be (max_message_size, or the NATS servers' max_payload)")
