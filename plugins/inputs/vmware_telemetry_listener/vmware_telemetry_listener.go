// Package vmware_telemetry_listener is the telemetry server as a Telegraf
// service input: it receives the batches outputs.vmware_telemetry posts and
// the platform API's events, checks them, stores each batch once and hands
// it to whatever outputs the configuration has: the data lake.
package vmware_telemetry_listener

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	common_tls "github.com/influxdata/telegraf/plugins/common/tls"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/selfstat"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

//go:embed sample.conf
var sampleConfig string

const (
	ackDelivered = "delivered"
	ackAccepted  = "accepted"

	defaultEventsPath = "/ph/api/hyper/events"
)

type Listener struct {
	ServiceAddress string `toml:"service_address"`
	Path           string `toml:"path"`
	EventsPath     string `toml:"events_path"`
	DictionaryFile string `toml:"dictionary_file"`

	Tokens              []config.Secret `toml:"tokens"`
	EventsTokens        []config.Secret `toml:"events_tokens"`
	AllowAnonymous      bool            `toml:"allow_anonymous"`
	AllowTokensOverHTTP bool            `toml:"allow_tokens_over_http"`

	ReadTimeout         config.Duration `toml:"read_timeout"`
	MaxBodySize         config.Size     `toml:"max_body_size"`
	MaxDecompressedSize config.Size     `toml:"max_decompressed_size"`
	MaxLineSize         config.Size     `toml:"max_line_size"`

	MaxBatchMetrics     int         `toml:"max_batch_metrics"`
	MaxConnections      int         `toml:"max_connections"`
	MaxBodyBuffer       config.Size `toml:"max_body_buffer"`
	MaxUndeliveredBytes config.Size `toml:"max_undelivered_bytes"`
	SetMemoryLimit      bool        `toml:"set_memory_limit"`

	Acknowledge           string          `toml:"acknowledge"`
	AckTimeout            config.Duration `toml:"ack_timeout"`
	MaxUndeliveredBatches int             `toml:"max_undelivered_batches"`
	RetryAfter            config.Duration `toml:"retry_after"`

	DedupFile       string          `toml:"dedup_file"`
	DedupWindow     config.Duration `toml:"dedup_window"`
	DedupMaxEntries int             `toml:"dedup_max_entries"`

	// JetStream, when set, replaces the embedded de-duplication and the
	// hand-off to this process's outputs (jetstream.go).
	JetStream *JetStream `toml:"jetstream"`

	common_tls.ServerConfig

	Log        telegraf.Logger     `toml:"-"`
	Statistics *selfstat.Collector `toml:"-"`

	tlsConf *tls.Config
	auth    *bearerAuth
	wire    *wire
	stats   *stats
	now     func() time.Time

	dedup    *dedupStore
	stream   *streamBackend
	tracker  *tracker
	decoding chan struct{}
	// bodies counts the bytes of request bodies held, undeliveredBytes the
	// estimated memory of decoded metrics not yet written by the outputs.
	bodies           *budget
	undeliveredBytes *budget
	// memoryLimit is the Go memory limit before Start set it, or -1.
	memoryLimit int64
	listener    net.Listener
	server      *http.Server
	serveErr    chan error
	// stopping is closed when Stop begins; waiting requests answer 503.
	stopping chan struct{}
	stopOnce sync.Once
}

func (*Listener) SampleConfig() string {
	return sampleConfig
}

func (l *Listener) Init() error {
	if l.ServiceAddress == "" {
		return errors.New("service_address is empty; set e.g. \":8443\"")
	}
	if !strings.HasPrefix(l.Path, "/") {
		return fmt.Errorf("path %q must start with '/'", l.Path)
	}
	if l.EventsPath != "" {
		if !strings.HasPrefix(l.EventsPath, "/") {
			return fmt.Errorf("events_path %q must start with '/' (or be empty to turn events off)", l.EventsPath)
		}
		if l.EventsPath == l.Path {
			return fmt.Errorf("events_path %q must differ from path", l.EventsPath)
		}
	}
	switch l.Acknowledge {
	case ackDelivered, ackAccepted:
	default:
		return fmt.Errorf("acknowledge %q: use %q (201 once the outputs wrote the batch) or %q (201 once it entered the pipeline)",
			l.Acknowledge, ackDelivered, ackAccepted)
	}
	if l.MaxBodySize <= 0 {
		return fmt.Errorf("max_body_size %d must be positive", l.MaxBodySize)
	}
	if l.MaxDecompressedSize < l.MaxBodySize {
		return fmt.Errorf("max_decompressed_size (%d) must be at least max_body_size (%d)", l.MaxDecompressedSize, l.MaxBodySize)
	}
	if l.MaxLineSize <= 0 || l.MaxLineSize > l.MaxDecompressedSize {
		return fmt.Errorf("max_line_size %d must be positive and at most max_decompressed_size", l.MaxLineSize)
	}
	if l.MaxBatchMetrics < 1 {
		return fmt.Errorf("max_batch_metrics %d must be at least 1", l.MaxBatchMetrics)
	}
	if l.MaxConnections < 1 {
		return fmt.Errorf("max_connections %d must be at least 1", l.MaxConnections)
	}
	if l.MaxBodyBuffer < l.MaxBodySize {
		return fmt.Errorf("max_body_buffer (%d) must be at least max_body_size (%d)", l.MaxBodyBuffer, l.MaxBodySize)
	}
	if minCost := int64(metricCostFixed + metricCostPerEntry); int64(l.MaxUndeliveredBytes) < minCost {
		return fmt.Errorf("max_undelivered_bytes %d must be at least %d (one small metric)", l.MaxUndeliveredBytes, minCost)
	}
	if l.MaxUndeliveredBatches < 1 {
		return fmt.Errorf("max_undelivered_batches %d must be at least 1", l.MaxUndeliveredBatches)
	}
	if l.AckTimeout <= 0 {
		return fmt.Errorf("ack_timeout %s must be positive", time.Duration(l.AckTimeout))
	}
	if l.ReadTimeout <= 0 {
		return fmt.Errorf("read_timeout %s must be positive", time.Duration(l.ReadTimeout))
	}
	if l.RetryAfter < config.Duration(time.Second) {
		return fmt.Errorf("retry_after %s must be at least 1s (Retry-After counts whole seconds)", time.Duration(l.RetryAfter))
	}
	if l.DedupWindow <= 0 {
		return fmt.Errorf("dedup_window %s must be positive", time.Duration(l.DedupWindow))
	}
	if l.DedupMaxEntries < 1 {
		return fmt.Errorf("dedup_max_entries %d must be at least 1", l.DedupMaxEntries)
	}

	if l.JetStream != nil {
		if err := l.JetStream.validate(); err != nil {
			return err
		}
		if l.DedupFile != "" {
			return errors.New("dedup_file and jetstream are both set: with jetstream the batch keys live in its dedup_bucket; remove dedup_file")
		}
	}

	tlsConf, err := l.ServerConfig.TLSConfig()
	if err != nil {
		return fmt.Errorf("tls options: %w", err)
	}
	l.tlsConf = tlsConf

	if err := l.initAuth(); err != nil {
		return err
	}

	if l.wire, err = newWire(l.DictionaryFile, int64(l.MaxDecompressedSize), int64(l.MaxLineSize)); err != nil {
		return err
	}

	if l.Statistics == nil {
		l.Statistics = selfstat.NewCollector(nil)
	}
	l.stats = newStats(l.Statistics, l.Path, l.EventsPath)
	if l.now == nil {
		l.now = time.Now
	}
	l.Log.Debugf("Peak memory bound from the settings: %s", l.memoryBound())
	return nil
}

// initAuth reads the tokens and refuses configurations that would let
// anyone in, or send tokens in clear, without saying so.
func (l *Listener) initAuth() error {
	l.auth = &bearerAuth{}
	if err := l.auth.addTokens(endpointBatches, "tokens", l.Tokens); err != nil {
		return err
	}
	if err := l.auth.addTokens(endpointEvents, "events_tokens", l.EventsTokens); err != nil {
		return err
	}
	if !l.auth.enabled(endpointBatches) {
		if !l.AllowAnonymous {
			return errors.New("tokens is empty, so any client could post batches; set tokens (e.g. [\"${TELEMETRY_TOKEN}\"]) or allow_anonymous = true")
		}
		l.Log.Warn("No tokens and allow_anonymous = true: any client may post batches; set tokens to require a bearer token")
	}
	if l.EventsPath != "" && !l.auth.enabled(endpointEvents) {
		if !l.AllowAnonymous {
			return errors.New("events_tokens is empty, so any client could post events (the agents' tokens are not accepted there); " +
				"set events_tokens, or events_path = \"\" to turn events off, or allow_anonymous = true")
		}
		l.Log.Warn("No events_tokens and allow_anonymous = true: any client may post events; set events_tokens to require a bearer token")
	}
	if l.tlsConf == nil && (len(l.Tokens) > 0 || len(l.EventsTokens) > 0) {
		if !l.AllowTokensOverHTTP {
			return errors.New("tokens would travel in clear over plain HTTP: set tls_cert and tls_key, " +
				"or allow_tokens_over_http = true if a TLS-terminating proxy in front of the listener is the only client")
		}
		l.Log.Info("Serving plain HTTP with tokens (allow_tokens_over_http = true): make sure only a TLS-terminating proxy reaches service_address")
	}
	return nil
}

func (l *Listener) Start(acc telegraf.Accumulator) error {
	l.dedup = newDedupStore(time.Duration(l.DedupWindow), l.DedupMaxEntries)
	l.dedup.log = l.Log
	loaded, err := l.dedup.open(l.DedupFile, l.now())
	if err != nil {
		return err
	}
	switch {
	case l.JetStream != nil: // the keys live in its dedup_bucket
	case l.DedupFile == "":
		l.Log.Info("dedup_file not set: de-duplication keys are kept in memory only and forgotten on restart")
	default:
		l.Log.Debugf("Loaded %d de-duplication keys from %q", loaded, l.DedupFile)
	}

	if l.JetStream != nil {
		// The claim outlives reading the body and waiting for the stream;
		// after it, another replica may take the batch over.
		lease := time.Duration(l.ReadTimeout) + time.Duration(l.AckTimeout)
		if l.stream, err = newStreamBackend(l.JetStream, time.Duration(l.DedupWindow), lease, l.Log); err != nil {
			l.dedup.close()
			return err
		}
	}

	ln, err := net.Listen("tcp", l.ServiceAddress)
	if err != nil {
		l.dedup.close()
		if l.stream != nil {
			l.stream.close()
		}
		return fmt.Errorf("listening on %q failed: %w", l.ServiceAddress, err)
	}
	ln = newLimitListener(ln, l.MaxConnections)
	if l.tlsConf != nil {
		ln = tls.NewListener(ln, l.tlsConf)
	}
	l.listener = ln

	l.decoding = make(chan struct{}, decodeSlots())
	l.bodies = newBudget(int64(l.MaxBodyBuffer))
	l.undeliveredBytes = newBudget(int64(l.MaxUndeliveredBytes))
	l.tracker = newTracker(acc, l.MaxUndeliveredBatches)
	l.tracker.start()
	l.applyMemoryLimit()

	l.stopping = make(chan struct{})
	l.stopOnce = sync.Once{}
	l.server = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: time.Duration(l.ReadTimeout),
		ReadTimeout:       time.Duration(l.ReadTimeout),
		MaxHeaderBytes:    maxHeaderBytes,
		// A request may wait ack_timeout for its delivery after reading.
		WriteTimeout: time.Duration(l.ReadTimeout) + time.Duration(l.AckTimeout) + 5*time.Second,
		// Idle connections count against max_connections: keep them short.
		IdleTimeout: time.Duration(l.ReadTimeout),
		ErrorLog:    nil,
	}
	l.serveErr = make(chan error, 1)
	go func() {
		err := l.server.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		l.serveErr <- err
	}()
	l.Log.Infof("Listening on %s (batches %s, events %s, acknowledge %s)", ln.Addr(), l.Path, l.eventsPathForLog(), l.Acknowledge)
	return nil
}

func (l *Listener) eventsPathForLog() string {
	if l.EventsPath == "" {
		return "off"
	}
	return l.EventsPath
}

// Gather only refreshes the gauges among the self-metrics; the metrics
// themselves arrive through the HTTP handlers.
func (l *Listener) Gather(telegraf.Accumulator) error {
	if l.tracker != nil {
		l.stats.undelivered.Set(int64(l.tracker.undelivered()))
		l.stats.dedupEntries.Set(int64(l.dedup.len()))
		l.stats.dedupLogErrors.Set(l.dedup.errors())
	}
	return nil
}

// Stop stops accepting connections and answers the requests waiting (for
// their batch to be written, or for an earlier attempt of it) 503 with
// Retry-After at once; requests still being read finish as usual. It then
// waits, up to ack_timeout, for the batches already in the pipeline to be
// delivered, so their keys are recorded before the log is closed and the
// agents' retries after the restart are answered as duplicates. Telegraf
// keeps flushing outputs while inputs stop, which is what delivers them.
func (l *Listener) Stop() {
	if l.server == nil {
		return
	}
	l.stopOnce.Do(func() { close(l.stopping) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(l.AckTimeout)+time.Duration(l.ReadTimeout))
	defer cancel()
	if err := l.server.Shutdown(ctx); err != nil {
		l.Log.Errorf("Stopping the HTTP server: %v; closing remaining connections", err)
		l.server.Close()
	}
	if err := <-l.serveErr; err != nil {
		l.Log.Errorf("Serving failed: %v", err)
	}

	delivered, cancelDelivered := context.WithTimeout(context.Background(), time.Duration(l.AckTimeout))
	defer cancelDelivered()
	if !l.tracker.idle(delivered) {
		n := l.tracker.undelivered()
		l.Log.Warnf("Stopped with %d batches not yet written by the outputs; their keys are not recorded, so agents' retries store them again", n)
	}
	l.tracker.stopDispatch()
	l.restoreMemoryLimit()
	if err := l.dedup.close(); err != nil {
		l.Log.Errorf("Closing de-duplication log: %v", err)
	}
	if l.stream != nil {
		l.stream.close()
		l.stream = nil
	}
	l.server = nil
}

// Addr is the address the listener is bound to (tests use port 0).
func (l *Listener) Addr() net.Addr {
	if l.listener == nil {
		return nil
	}
	return l.listener.Addr()
}

func init() {
	inputs.Add("vmware_telemetry_listener", func() telegraf.Input {
		return &Listener{
			ServiceAddress:        ":8443",
			Path:                  telemetry.DefaultPath,
			EventsPath:            defaultEventsPath,
			ReadTimeout:           config.Duration(10 * time.Second),
			MaxBodySize:           config.Size(4 << 20),
			MaxDecompressedSize:   config.Size(32 << 20),
			MaxLineSize:           config.Size(64 << 10),
			Acknowledge:           ackDelivered,
			AckTimeout:            config.Duration(20 * time.Second),
			MaxBatchMetrics:       50000,
			MaxConnections:        512,
			MaxBodyBuffer:         config.Size(16 << 20),
			MaxUndeliveredBytes:   config.Size(96 << 20),
			SetMemoryLimit:        true,
			MaxUndeliveredBatches: 64,
			RetryAfter:            config.Duration(5 * time.Second),
			DedupWindow:           config.Duration(24 * time.Hour),
			DedupMaxEntries:       250000,
		}
	})
}
