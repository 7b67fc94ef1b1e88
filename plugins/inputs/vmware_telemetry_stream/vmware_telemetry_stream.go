// Package vmware_telemetry_stream is the lake consumer of the telemetry
// server's scale-out backend: it reads the batches the listener replicas
// stored in NATS JetStream and hands each to this process's outputs (the
// data lake), acknowledging it to the stream only once they wrote it. With
// a relay table it forwards each batch to an upstream telemetry server
// instead, under the agent's batch identity (relay.go).
package vmware_telemetry_stream

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/selfstat"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetrystream"
)

//go:embed sample.conf
var sampleConfig string

type Stream struct {
	telemetrystream.Config
	Durable               string          `toml:"durable"`
	AckWait               config.Duration `toml:"ack_wait"`
	MaxUndeliveredBatches int             `toml:"max_undelivered_batches"`
	LakeBucket            string          `toml:"lake_bucket"`
	LakeWindow            config.Duration `toml:"lake_window"`
	MaxDecompressedSize   config.Size     `toml:"max_decompressed_size"`
	MaxLineSize           config.Size     `toml:"max_line_size"`
	Relay                 *Relay          `toml:"relay"`

	Log        telegraf.Logger     `toml:"-"`
	Statistics *selfstat.Collector `toml:"-"`

	stats   *stats
	decoder *telemetrystream.Decoder
	client  *http.Client
	nc      *nats.Conn
	js      jetstream.JetStream
	cancel  context.CancelFunc
	done    sync.WaitGroup
}

func (*Stream) SampleConfig() string {
	return sampleConfig
}

func (s *Stream) Init() error {
	s.SetDefaults()
	if err := s.Validate("inputs.vmware_telemetry_stream"); err != nil {
		return err
	}
	if s.Durable == "" {
		return errors.New("durable is empty; name the consumer, e.g. \"tkgi-lake\"")
	}
	if s.LakeBucket == "" {
		return errors.New("lake_bucket is empty; name the bucket of written batch keys, e.g. \"TKGI_TELEMETRY_LAKE\"")
	}
	if s.AckWait < config.Duration(time.Second) {
		return fmt.Errorf("ack_wait %s must be at least 1s", time.Duration(s.AckWait))
	}
	if s.LakeWindow <= 0 {
		return fmt.Errorf("lake_window %s must be positive", time.Duration(s.LakeWindow))
	}
	if s.MaxUndeliveredBatches < 1 {
		return fmt.Errorf("max_undelivered_batches %d must be at least 1", s.MaxUndeliveredBatches)
	}
	if s.Relay != nil {
		if s.Durable == "tkgi-lake" {
			return errors.New("relay with durable \"tkgi-lake\": give the relay its own consumer, e.g. durable = \"tkgi-relay\"; sharing the lake's would split the batches between the lake and the upstream")
		}
		if err := s.Relay.validate(); err != nil {
			return err
		}
	}
	var err error
	s.decoder, err = telemetrystream.NewDecoder(int64(s.MaxDecompressedSize), int64(s.MaxLineSize))
	if err != nil {
		return fmt.Errorf("max_decompressed_size, max_line_size: %w", err)
	}
	if s.Statistics == nil {
		s.Statistics = selfstat.NewCollector(nil)
	}
	s.stats = newStats(s.Statistics, s.mode(), s.Durable, s.Config.Stream)
	return nil
}

// mode is "relay" with a relay table, else "lake".
func (s *Stream) mode() string {
	if s.Relay != nil {
		return "relay"
	}
	return "lake"
}

func (s *Stream) Start(acc telegraf.Accumulator) error {
	var err error
	if s.Relay != nil {
		if s.client, err = telemetry.NewHTTPClient(context.Background(), &s.Relay.HTTPClientConfig, s.Log); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
	}
	s.nc, s.js, err = s.Connect("vmware_telemetry_stream "+s.Durable, s.Log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		s.run(ctx, acc.WithTracking(s.MaxUndeliveredBatches))
	}()
	return nil
}

// Gather reports the durable consumer's state (state.go); the batches
// themselves arrive from the stream.
func (s *Stream) Gather(acc telegraf.Accumulator) error {
	return s.gatherState(acc)
}

// Stop ends consuming, then waits (up to drainTimeout) for the outputs to
// write the batches they hold and settles them; Telegraf keeps flushing
// the outputs while the inputs stop. Batches still unwritten then stay
// unacknowledged, and the stream delivers them again after ack_wait.
func (s *Stream) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.done.Wait()
	if s.nc != nil {
		s.nc.Close()
	}
}

func init() {
	inputs.Add("vmware_telemetry_stream", func() telegraf.Input {
		return &Stream{
			Durable:               "tkgi-lake",
			AckWait:               config.Duration(2 * time.Minute),
			MaxUndeliveredBatches: 16,
			LakeBucket:            "TKGI_TELEMETRY_LAKE",
			LakeWindow:            config.Duration(24 * time.Hour),
			MaxDecompressedSize:   config.Size(32 << 20),
			MaxLineSize:           config.Size(64 << 10),
		}
	})
}
