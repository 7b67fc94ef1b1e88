// Package vmware_telemetry is the agent side of the telemetry programme: it
// applies the participation level and the data dictionary to every metric,
// pseudonymizes identifying values under a per-installation key, encodes
// line protocol, compresses it and posts it to the telemetry server, each
// batch with an idempotency key that survives retries.
package vmware_telemetry

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	httpconfig "github.com/influxdata/telegraf/plugins/common/http"
	"github.com/influxdata/telegraf/plugins/common/proxy"
	"github.com/influxdata/telegraf/plugins/outputs"
	"github.com/influxdata/telegraf/selfstat"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

//go:embed sample.conf
var sampleConfig string

const (
	defaultCollectorID = "telegraf-tkgi.v1"
	defaultInstanceID  = "default"
	defaultKeyFile     = "/var/lib/telegraf-tkgi/telemetry.key"

	// instanceDomain is the pseudonym domain of the _i query parameter.
	instanceDomain = "_i"

	minPayloadBytes = 1024
	// maxRetryAfter bounds what a server can make the agent wait.
	maxRetryAfter = time.Hour
	// shutdownGrace is what a request in flight, or the agent's last
	// flush, gets once the agent stops; waits for a retry end at once.
	shutdownGrace = 2 * time.Second
)

type VMwareTelemetry struct {
	// Where to, and as whom.
	URL   string        `toml:"url"`
	Token config.Secret `toml:"token"`

	// What leaves: the level, and the identity sent only at enhanced.
	ParticipationLevel string `toml:"participation_level"`
	CustomerNumber     string `toml:"customer_number"`
	InstallationLabel  string `toml:"installation_label"`
	InstallationType   string `toml:"installation_type"`
	CollectorID        string `toml:"collector_id"`
	InstanceID         string `toml:"instance_id"`
	DictionaryFile     string `toml:"dictionary_file"`

	// The installation's pseudonym key: a file created once, or a secret.
	PseudonymKeyFile string        `toml:"pseudonym_key_file"`
	PseudonymKey     config.Secret `toml:"pseudonym_key"`

	// How batches travel: compressed, split to fit the server's limit.
	ContentEncoding string      `toml:"content_encoding"`
	MaxPayloadBytes config.Size `toml:"max_payload_bytes"`

	// Retries keep a batch until it is stored or refused for good.
	RetryInitial        config.Duration `toml:"retry_initial"`
	RetryMax            config.Duration `toml:"retry_max"`
	RetryWithinWrite    config.Duration `toml:"retry_within_write"`
	MaxAttemptsPerWrite int             `toml:"max_attempts_per_write"`

	// A copy of what would be sent, for the operator to read.
	Preview     bool   `toml:"preview"`
	PreviewFile string `toml:"preview_file"`

	httpconfig.HTTPClientConfig

	Log        telegraf.Logger     `toml:"-"`
	Statistics *selfstat.Collector `toml:"-"`

	level      telemetry.Level
	dict       *telemetry.Dictionary
	policy     *telemetry.Policy
	instance   string // pseudonym sent as _i
	keyID      string
	endpoint   string // url with _c and _i
	client     *http.Client
	compressor *telemetry.Compressor
	encoder    *telemetry.Encoder
	stats      *stats
	preview    io.WriteCloser

	batch   batch
	body    []byte // compressed body, reused
	pending []pendingChunk
	seen    ratio // compression so far, to size chunks

	// Backoff state across writes.
	failures  int
	notBefore time.Time
	lastErr   error

	// ctx ends waits (Interrupt, Close); reqCtx ends requests in flight
	// (shutdownGrace after Interrupt, Close).
	ctx          context.Context
	cancel       context.CancelFunc
	reqCtx       context.Context
	cancelReq    context.CancelFunc
	interruptOne sync.Once
	// restored is the statefile's state, applied once the key is known.
	restored *State

	// Replaced in tests.
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) bool
	jitter func() float64
}

func (*VMwareTelemetry) SampleConfig() string {
	return sampleConfig
}

func (t *VMwareTelemetry) Init() error {
	level, err := telemetry.ParseLevel(t.ParticipationLevel)
	if err != nil {
		return fmt.Errorf("participation_level %q unknown; use %q, %q or %q",
			t.ParticipationLevel, telemetry.LevelNone, telemetry.LevelStandard, telemetry.LevelEnhanced)
	}
	t.level = level
	if t.now == nil {
		t.now = time.Now
	}
	if t.sleep == nil {
		t.sleep = sleepContext
	}
	if t.jitter == nil {
		t.jitter = rand.Float64
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.reqCtx, t.cancelReq = context.WithCancel(context.Background())
	t.stats = newStats(t.Statistics)

	if level == telemetry.LevelNone {
		// Nothing else matters: no key, no dictionary, no connection.
		return nil
	}

	if level == telemetry.LevelEnhanced && strings.TrimSpace(t.CustomerNumber) == "" {
		return errors.New("customer_number is required at participation_level \"enhanced\"; set it or use \"standard\"")
	}
	if level == telemetry.LevelStandard && (t.CustomerNumber != "" || t.InstallationLabel != "" || t.InstallationType != "") {
		t.Log.Warn("customer_number, installation_label and installation_type are sent at participation_level \"enhanced\" only; ignoring them")
	}
	if !telemetry.ValidID(t.CollectorID) {
		return fmt.Errorf("collector_id %q: use 1-%d letters, digits, '.', '_', '-' or ':'", t.CollectorID, telemetry.MaxIDLength)
	}
	if t.InstanceID == "" {
		return errors.New("instance_id is empty; leave it at its default or name this installation")
	}
	encoding, ok := telemetry.ParseEncoding(t.ContentEncoding)
	if !ok || encoding == telemetry.EncodingIdentity {
		return fmt.Errorf("content_encoding %q: use %q or %q", t.ContentEncoding, telemetry.EncodingZstd, telemetry.EncodingGzip)
	}
	if t.MaxPayloadBytes < minPayloadBytes {
		return fmt.Errorf("max_payload_bytes %d is too small; use at least %d", int64(t.MaxPayloadBytes), minPayloadBytes)
	}
	if t.RetryInitial <= 0 || t.RetryMax < t.RetryInitial {
		return fmt.Errorf("retry_initial (%s) must be positive and at most retry_max (%s)",
			time.Duration(t.RetryInitial), time.Duration(t.RetryMax))
	}
	if t.RetryWithinWrite < 0 {
		return fmt.Errorf("retry_within_write %s must not be negative", time.Duration(t.RetryWithinWrite))
	}
	if t.MaxAttemptsPerWrite < 1 {
		return fmt.Errorf("max_attempts_per_write %d must be at least 1", t.MaxAttemptsPerWrite)
	}
	if !t.Preview {
		if err := t.initEndpointCheck(); err != nil {
			return err
		}
		if err := checkProxyURL(t.HTTPProxyURL); err != nil {
			return err
		}
	}

	dict, err := telemetry.LoadDictionary(t.DictionaryFile)
	if err != nil {
		return fmt.Errorf("dictionary_file: %w", err)
	}
	t.dict = dict

	// The key is read here; a key file still to be created is checked
	// (can it be?) and created by Connect: Init has no side effects, so
	// `config check` and --test write nothing.
	ps, err := t.loadPseudonymizer()
	if err != nil {
		return err
	}
	if ps != nil {
		if err := t.useKey(ps); err != nil {
			return err
		}
	}
	if t.compressor, err = telemetry.NewCompressor(encoding); err != nil {
		return fmt.Errorf("content_encoding: %w", err)
	}
	t.encoder = telemetry.NewEncoder()
	t.encoder.SetLax(true) // views from the policy are checked already
	return nil
}

// useKey derives what depends on the pseudonym key.
func (t *VMwareTelemetry) useKey(ps *telemetry.Pseudonymizer) error {
	t.keyID = ps.KeyID()
	t.instance = ps.InstanceID(instanceDomain, t.InstanceID)
	policy, err := telemetry.NewPolicy(t.dict, t.level, ps, telemetry.Identity{
		CustomerNumber:    t.CustomerNumber,
		InstallationLabel: t.InstallationLabel,
		InstallationType:  t.InstallationType,
	})
	if err != nil {
		return err
	}
	t.policy = policy
	if t.restored != nil {
		t.applyState(*t.restored)
		t.restored = nil
	}
	return nil
}

// initEndpointCheck validates url; it does not resolve or connect. Its
// errors show the URL redacted: no password, no query values.
func (t *VMwareTelemetry) initEndpointCheck() error {
	if t.URL == "" {
		return errors.New("url is empty; set the telemetry server's endpoint, e.g. \"https://telemetry.example.com/ph/api/hyper/send\", or set preview = true")
	}
	u, err := url.Parse(t.URL)
	if err != nil {
		return fmt.Errorf("url cannot be parsed (%w); use an http or https URL with a host", urlErrorReason(err))
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("url %q: use an http or https URL with a host", redactURL(u))
	}
	if u.User != nil {
		return fmt.Errorf("url %q: credentials do not belong in the URL; use token", redactURL(u))
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = telemetry.DefaultPath
	}
	q := u.Query()
	if q.Has(telemetry.QueryCollector) || q.Has(telemetry.QueryInstance) {
		return fmt.Errorf("url %q: leave out %s and %s; the output adds them from collector_id and instance_id",
			redactURL(u), telemetry.QueryCollector, telemetry.QueryInstance)
	}
	t.endpoint = u.String()
	return nil
}

// loadPseudonymizer reads the key from pseudonym_key or pseudonym_key_file.
// A key file that does not exist yet gives nil: Connect creates it, once
// Init made sure it can.
func (t *VMwareTelemetry) loadPseudonymizer() (*telemetry.Pseudonymizer, error) {
	if !t.PseudonymKey.Empty() {
		buf, err := t.PseudonymKey.Get()
		if err != nil {
			return nil, fmt.Errorf("getting pseudonym_key failed: %w", err)
		}
		key, err := telemetry.ParseKey(buf.Bytes())
		buf.Destroy()
		if err != nil {
			return nil, fmt.Errorf("pseudonym_key: %w", err)
		}
		return telemetry.NewPseudonymizer(key)
	}
	if t.PseudonymKeyFile == "" {
		return nil, errors.New("pseudonym_key_file is empty; set a path that survives restarts (or pseudonym_key)")
	}
	key, err := readKeyFile(t.PseudonymKeyFile)
	if err != nil {
		return nil, fmt.Errorf("pseudonym_key_file: %w; mount a Secret holding `openssl rand -hex 32` there or point it to a writable path", err)
	}
	if key == nil {
		return nil, nil
	}
	ps, err := telemetry.NewPseudonymizer(key)
	if err != nil {
		return nil, fmt.Errorf("pseudonym_key_file %q: %w", t.PseudonymKeyFile, err)
	}
	return ps, nil
}

// createKey makes the key file Init found missing (or another process
// made meanwhile: then that key is used).
func (t *VMwareTelemetry) createKey() error {
	key, created, err := telemetry.LoadOrCreateKey(t.PseudonymKeyFile)
	if err != nil {
		return fmt.Errorf("pseudonym_key_file: %w; mount a Secret holding `openssl rand -hex 32` there or point it to a writable path", err)
	}
	ps, err := telemetry.NewPseudonymizer(key)
	if err != nil {
		return fmt.Errorf("pseudonym_key_file %q: %w", t.PseudonymKeyFile, err)
	}
	if created {
		t.Log.Infof("Created pseudonym key %s in %q; keep this file: a new key changes every pseudonym", ps.KeyID(), t.PseudonymKeyFile)
	}
	return t.useKey(ps)
}

// Connect creates the key file if Init found none and builds the HTTP
// client; it opens no connection (the first POST does). At level none and
// in preview mode there is no client at all.
func (t *VMwareTelemetry) Connect() error {
	if t.level == telemetry.LevelNone {
		t.Log.Info("Participation level none: nothing is sent; metrics are counted and dropped")
		return nil
	}
	if t.policy == nil {
		if err := t.createKey(); err != nil {
			return err
		}
	}
	if t.Preview {
		w, err := openPreview(t.PreviewFile, t.Log)
		if err != nil {
			return err
		}
		t.preview = w
		t.Log.Infof("Preview mode: batches are written to %s, nothing is sent", previewTarget(t.PreviewFile))
		return nil
	}
	client, err := t.newClient()
	if err != nil {
		return t.redactError(err)
	}
	t.client = client
	t.Log.Infof("Sending at level %s, dictionary %s, instance %s, key %s, to %s",
		t.level, t.dict.Version, t.instance, t.keyID, redactURLString(t.endpoint))
	return nil
}

// Interrupt tells the output that the agent is stopping (SIGTERM, SIGINT,
// a reload): a write waiting to retry returns at once, its batch kept in
// Telegraf's buffer; requests in flight and the agent's last flush get
// shutdownGrace to finish. telegraf-tkgi calls it on the signal; Close
// does the same at once.
func (t *VMwareTelemetry) Interrupt() {
	if t.cancel == nil {
		return
	}
	t.cancel()
	t.interruptOne.Do(func() { time.AfterFunc(shutdownGrace, t.cancelReq) })
}

func (t *VMwareTelemetry) Close() error {
	if t.cancel != nil {
		t.cancel()
		t.cancelReq()
	}
	if t.client != nil {
		t.client.CloseIdleConnections()
	}
	if t.preview != nil {
		err := t.preview.Close()
		t.preview = nil
		return err
	}
	return nil
}

// Write sends the batch. Metrics the level or the dictionary drops are
// counted and gone, so are chunks the server refused for good (logged).
// If a chunk cannot be delivered now, Write returns the error and the whole
// batch stays in Telegraf's buffer; the next Write skips the chunks already
// answered and resends the failed one with the same idempotency key.
func (t *VMwareTelemetry) Write(metrics []telegraf.Metric) error {
	if t.level == telemetry.LevelNone {
		t.stats.dropped(telemetry.DroppedLevel, len(metrics))
		return nil
	}

	b := &t.batch
	t.prepare(b, metrics)
	chunks := t.plan(b)

	// Backing off: no connection until the wait is over. (In preview
	// mode nothing fails, so there is never a wait.)
	if wait := t.notBefore.Sub(t.now()); wait > 0 && !t.lastFlushWaits(wait) {
		return fmt.Errorf("backing off until %s after %d failed attempts: %w",
			t.notBefore.Format(time.RFC3339), t.failures, t.lastErr)
	}
	if err := t.send(b, chunks); err != nil {
		return err
	}
	t.done(b)
	return nil
}

func init() {
	outputs.Add("vmware_telemetry", func() telegraf.Output {
		return &VMwareTelemetry{
			ParticipationLevel:  string(telemetry.LevelStandard),
			CollectorID:         defaultCollectorID,
			InstanceID:          defaultInstanceID,
			PseudonymKeyFile:    defaultKeyFile,
			ContentEncoding:     telemetry.EncodingZstd,
			MaxPayloadBytes:     config.Size(1 << 20),
			RetryInitial:        config.Duration(time.Second),
			RetryMax:            config.Duration(5 * time.Minute),
			RetryWithinWrite:    config.Duration(10 * time.Second),
			MaxAttemptsPerWrite: 3,
			HTTPClientConfig: httpconfig.HTTPClientConfig{
				Timeout: config.Duration(30 * time.Second),
				TransportConfig: httpconfig.TransportConfig{
					IdleConnTimeout: config.Duration(90 * time.Second),
					HTTPProxy:       proxy.HTTPProxy{UseSystemProxy: true},
				},
			},
		}
	})
}
