package vmware_telemetry_listener

import (
	"fmt"
	"math"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/influxdata/telegraf"
	"github.com/klauspost/compress/zstd"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetrystream"
)

// The listener's memory is bounded by its settings, whatever clients send
// (README "Memory"): every part that grows with what clients send has a
// limit in bytes, and memoryBound adds them up. The per-item costs below
// are upper bounds measured on amd64 (TestMetricCostIsAnUpperBound,
// scripts/hostile-listener).
const (
	// memFixed is the process at rest: Go runtime, Telegraf, the
	// dictionary, the outputs' buffers of a server.conf-like configuration,
	// the binary's pages (60 MB resident measured with configs/server.conf).
	memFixed = 72 << 20
	// memPerConnection is one open connection with a request being read:
	// goroutine, TLS and HTTP buffers, headers within maxHeaderBytes.
	memPerConnection = 64 << 10
	// memPerDedupEntry is one remembered Idempotency-Key (map and ring).
	memPerDedupEntry = 96
	// memPerUndelivered is what a batch waiting for the outputs holds
	// besides its metrics: its request's goroutine, tracking, claim.
	memPerUndelivered = 16 << 10
	// memCheckerCache bounds one BatchChecker's remembered shapes
	// (telemetry's maxShapes of at most maxShapeKey bytes, with the map).
	memCheckerCache = 3 << 20

	// metricCostFixed and metricCostPerEntry estimate a decoded metric's
	// memory: the metric, its slot in the batch, the tracking wrapper and
	// the tags and field the listener adds (fixed), one tag or field with
	// its pointer and value (per entry); the bytes of its name, keys and
	// string values are added to these.
	metricCostFixed    = 448
	metricCostPerEntry = 80

	// memNATSConn is the NATS connection's buffers: the client's write
	// buffer and what it holds for a reconnect (nats.go's 8 MiB default
	// ReconnectBufSize), with its read buffer and subscriptions.
	memNATSConn = 9 << 20

	// maxHeaderBytes bounds a request's headers (Go's default is 1 MiB).
	maxHeaderBytes = 16 << 10
	// maxDecodeSlots caps decoding in parallel whatever the CPUs.
	maxDecodeSlots = 4
	// bodyChunk is the unit in which bodies are read and counted.
	bodyChunk = 32 << 10
)

// metricCost is the estimate of m's memory once the listener has added its
// tags and field; an upper bound of the real cost. Strings count an eighth
// more than their length: the allocator rounds them up to a size class.
func metricCost(m telegraf.Metric) int64 {
	n := int64(metricCostFixed) + stringCost(m.Name())
	for _, t := range m.TagList() {
		n += metricCostPerEntry + stringCost(t.Key) + stringCost(t.Value)
	}
	for _, f := range m.FieldList() {
		n += metricCostPerEntry + stringCost(f.Key)
		if s, ok := f.Value.(string); ok {
			n += stringCost(s)
		}
	}
	return n
}

func stringCost(s string) int64 {
	return int64(len(s) + len(s)/8)
}

// memoryParts are the terms of the memory formula, in bytes.
type memoryParts struct {
	fixed, connections, bodies, decoding, dedup, undelivered int64
	// stream is the JetStream backend's: its encoding slots and the NATS
	// connection's buffers (0 without it).
	stream int64
}

// dynamic is what grows with the clients: all but the fixed part.
func (p memoryParts) dynamic() int64 {
	return p.connections + p.bodies + p.decoding + p.dedup + p.undelivered + p.stream
}

// peak is the formula: the garbage collector (GOGC=100) lets the heap
// grow to twice what is live before collecting it.
func (p memoryParts) peak() int64 {
	return p.fixed + 2*p.dynamic()
}

func (p memoryParts) String() string {
	s := fmt.Sprintf("%d MiB = %d fixed + 2 x (%d connections + %d bodies + %d decoding + %d dedup keys + %d undelivered",
		p.peak()>>20, p.fixed>>20, p.connections>>20, p.bodies>>20, p.decoding>>20, p.dedup>>20, p.undelivered>>20)
	if p.stream > 0 {
		s += fmt.Sprintf(" + %d stream", p.stream>>20)
	}
	return s + ")"
}

// memoryBound computes the formula from the settings.
func (l *Listener) memoryBound() memoryParts {
	window := int64(min(max(int64(l.MaxDecompressedSize), zstd.MinWindowSize), 8<<20))
	perDecode := window + 3*int64(l.MaxLineSize) + memCheckerCache
	p := memoryParts{
		fixed:       memFixed,
		connections: int64(l.MaxConnections) * memPerConnection,
		bodies:      int64(l.MaxBodyBuffer),
		decoding:    int64(decodeSlots()) * perDecode,
		dedup:       int64(l.DedupMaxEntries) * memPerDedupEntry,
		undelivered: int64(l.MaxUndeliveredBytes) + int64(l.MaxUndeliveredBatches)*memPerUndelivered,
	}
	if l.JetStream != nil {
		// The keys live in the engine; messages waiting for the stream
		// are counted in max_undelivered_bytes.
		p.dedup = 0
		p.stream = int64(decodeSlots())*(telemetrystream.EncoderMemory+int64(l.JetStream.MaxMessageSize)) + memNATSConn
	}
	return p
}

func decodeSlots() int {
	return min(runtime.GOMAXPROCS(0), maxDecodeSlots)
}

// budget is a count of bytes that requests take and give back; taking
// never waits: a full budget is the client's cue to retry later.
type budget struct {
	mu    sync.Mutex
	total int64
	used  int64
}

func newBudget(total int64) *budget { return &budget{total: total} }

// take takes n bytes if they are free.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.total {
		return false
	}
	b.used += n
	return true
}

func (b *budget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// limitListener accepts at most n connections at once; beyond, Accept waits
// for one to close (the kernel's backlog holds the newcomers meanwhile).
type limitListener struct {
	net.Listener
	slots chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// memNotGo is what the resident size holds beyond the memory Go's limit
// counts: the binary's pages (RssFile, 46-47 MB at rest and under the
// hostile run) and a margin for pages the runtime has not returned yet.
const memNotGo = 56 << 20

// applyMemoryLimit sets the Go memory limit to the formula's peak (less
// memNotGo), unless
// set_memory_limit is off or the operator set one (GOMEMLIMIT): the
// garbage collector then works harder rather than let the heap pass it,
// which keeps the resident size honest if an estimate above is short.
func (l *Listener) applyMemoryLimit() {
	l.memoryLimit = -1
	bound := l.memoryBound()
	if !l.SetMemoryLimit {
		l.Log.Infof("Peak memory bound %d bytes (%s); set_memory_limit is off", bound.peak(), bound)
		return
	}
	if os.Getenv("GOMEMLIMIT") != "" || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		l.Log.Infof("Peak memory bound %d bytes (%s); the Go memory limit was already set (%d bytes), left as is",
			bound.peak(), bound, debug.SetMemoryLimit(-1))
		return
	}
	limit := bound.peak() - memNotGo
	l.memoryLimit = debug.SetMemoryLimit(limit)
	l.Log.Infof("Peak memory bound %d bytes (%s); Go memory limit set to %d MiB", bound.peak(), bound, limit>>20)
}

func (l *Listener) restoreMemoryLimit() {
	if l.memoryLimit >= 0 {
		debug.SetMemoryLimit(l.memoryLimit)
		l.memoryLimit = -1
	}
}
