package vmware_telemetry_listener

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/influxdata/telegraf"
)

// The de-duplication store remembers the Idempotency-Key of every batch that
// reached the pipeline, for a window, so a retried batch is stored once.
//
// Keys are kept as 16-byte digests of (scope, collector, instance, key): the
// memory per entry is fixed whatever the client sends, and one agent cannot
// suppress another's batches by reusing its key.
//
// Persistence is an append-only log of fixed 24-byte records (digest, expiry
// as big-endian Unix nanoseconds) after an 8-byte magic. Each commit is one
// write(2) before the client is answered, so a killed process loses nothing
// the kernel has; an fsync runs on compaction and on close, so a power loss
// can forget the commits since then (the agent's retry is then stored twice).
// Loading skips a torn last record, expired records and all but the newest
// max entries, then rewrites the log (compaction on start); the log is also
// compacted when it holds twice as many records as the store.
//
// A full disk must neither corrupt the log nor lose or duplicate a batch:
//   - Before a keyed batch enters the pipeline, ready reserves room for its
//     record (fallocate past the end of the file, where the filesystem
//     supports it). When it cannot, the batch is refused (503 with
//     Retry-After, the agent keeps it) before anything is stored.
//   - A write that fails anyway (a filesystem without preallocation) is cut
//     back to the last whole record, so later records stay aligned; the key
//     stays in memory (its batch is stored) and the log is marked stale.
//   - A stale log is rewritten from memory by the next ready; until that
//     succeeds, keyed batches are refused as above.
// The operator is told once when the log fails and once when it recovers.
// Telegraf's statefile was not used: it is written only at a clean shutdown,
// so a crash would forget every key.

const (
	dedupMagic      = "TKGIDD01"
	dedupRecordSize = 24
)

// dedupReserveBytes is how much room ready reserves past the end of the log
// at once: 2730 records, more than max_undelivered_batches in flight.
var dedupReserveBytes int64 = 64 << 10

type dedupKey [16]byte

func newDedupKey(scope, collector, instance, key string) dedupKey {
	h := sha256.New()
	for _, s := range []string{scope, collector, instance, key} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var k dedupKey
	copy(k[:], h.Sum(nil))
	return k
}

// pending is a batch being stored under a key; retries of the same key that
// arrive meanwhile wait for it instead of storing the batch a second time.
type pending struct {
	key dedupKey
	// registered is false for a batch without an Idempotency-Key: it is
	// tracked the same way but never remembered.
	registered bool
	done       chan struct{}
	// stored is written once before done is closed.
	stored bool
	// reserved: ready counted room in the log for this key's record.
	reserved bool
}

// Outcome of dedupStore.begin.
type beginResult int

const (
	// The caller owns the key and must call commit or abort.
	beginStarted beginResult = iota
	// The key was stored before: answer as a duplicate.
	beginDuplicate
	// Another request stores the key right now: wait for its done channel.
	beginInFlight
)

type dedupEntry struct {
	key     dedupKey
	expires int64
}

type dedupStore struct {
	window     time.Duration
	maxEntries int
	path       string

	mu      sync.Mutex
	entries map[dedupKey]int64
	// order holds the entries in commit order, which is expiry order since
	// the window is fixed: a ring of count entries starting at first.
	order   []dedupEntry
	first   int
	count   int
	pending map[dedupKey]*pending

	log telegraf.Logger

	file    *os.File
	records int
	// size is the length of the log's whole records (plus magic): where
	// the next record goes, and where a torn write is cut back to.
	size int64
	// reservedEnd is the end of the room fallocate reserved (0: none);
	// promised counts the records ready promised room for.
	reservedEnd int64
	promised    int
	noPrealloc  bool
	// stale: memory holds keys the log lacks (a failed write); failure is
	// the error the operator was told about, nil while the log is healthy.
	stale          bool
	failure        error
	nextCompaction int
	writeErrs      int
	logErrors      int64
}

func newDedupStore(window time.Duration, maxEntries int) *dedupStore {
	return &dedupStore{
		window:     window,
		maxEntries: maxEntries,
		entries:    make(map[dedupKey]int64),
		pending:    make(map[dedupKey]*pending),
	}
}

// open loads the log at path (if any), compacts it and keeps it open for
// appending. Without a path the store lives in memory only.
func (s *dedupStore) open(path string, now time.Time) (loaded int, err error) {
	if path == "" {
		return 0, nil
	}
	s.path = path
	s.mu.Lock()
	defer s.mu.Unlock()

	exists, err := s.load(now.UnixNano())
	if err != nil {
		return 0, err
	}
	if !exists {
		// Created by the first ready, so that starting (and `--test`)
		// writes nothing; a directory it cannot be created in fails now.
		if err := writableDir(filepath.Dir(path)); err != nil {
			return 0, fmt.Errorf("de-duplication log %q cannot be created: %w", path, err)
		}
		return 0, nil
	}
	if err := s.compactLocked(); err != nil {
		return 0, err
	}
	return s.count, nil
}

// load reads the log's unexpired records; exists is false when there is no
// log yet.
func (s *dedupStore) load(now int64) (exists bool, err error) {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("opening de-duplication log: %w", err)
	}
	defer f.Close()

	r := bufio.NewReaderSize(f, 64*1024)
	magic := make([]byte, len(dedupMagic))
	if _, err := io.ReadFull(r, magic); err != nil {
		if errors.Is(err, io.EOF) {
			return true, nil // empty file: created but never written
		}
		return true, fmt.Errorf("reading de-duplication log %q: %w", s.path, err)
	}
	if string(magic) != dedupMagic {
		return true, fmt.Errorf("%q is not a de-duplication log (bad magic); remove it or point dedup_file elsewhere", s.path)
	}
	var rec [dedupRecordSize]byte
	for {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			// io.ErrUnexpectedEOF is a record torn by a crash: skip it.
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return true, nil
			}
			return true, fmt.Errorf("reading de-duplication log %q: %w", s.path, err)
		}
		var e dedupEntry
		copy(e.key[:], rec[:16])
		e.expires = int64(binary.BigEndian.Uint64(rec[16:]))
		if e.expires <= now {
			continue
		}
		s.insertLocked(e)
	}
}

// insertLocked adds or refreshes an entry and evicts the oldest entries
// beyond maxEntries.
func (s *dedupStore) insertLocked(e dedupEntry) {
	if _, ok := s.entries[e.key]; ok {
		// Seen again (a log replay): the older ring slot stays, the map
		// holds the newer expiry; expireLocked skips stale slots.
		s.entries[e.key] = e.expires
		s.push(e)
		return
	}
	s.entries[e.key] = e.expires
	s.push(e)
	for len(s.entries) > s.maxEntries {
		s.popOldest()
	}
}

func (s *dedupStore) push(e dedupEntry) {
	if s.count == len(s.order) {
		// Full: unroll the ring into one twice the size.
		grown := make([]dedupEntry, max(2*len(s.order), 1024))
		for i := 0; i < s.count; i++ {
			grown[i] = s.order[(s.first+i)%len(s.order)]
		}
		s.order = grown
		s.first = 0
	}
	s.order[(s.first+s.count)%len(s.order)] = e
	s.count++
}

func (s *dedupStore) popOldest() {
	e := s.order[s.first]
	s.first = (s.first + 1) % len(s.order)
	s.count--
	// Delete only if the map still refers to this slot's expiry; a key
	// refreshed later has a newer slot.
	if exp, ok := s.entries[e.key]; ok && exp == e.expires {
		delete(s.entries, e.key)
	}
}

func (s *dedupStore) expireLocked(now int64) {
	for s.count > 0 && s.order[s.first].expires <= now {
		s.popOldest()
	}
}

// begin claims key for storing, or says why not.
func (s *dedupStore) begin(key dedupKey, now time.Time) (beginResult, *pending) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now.UnixNano())
	if _, ok := s.entries[key]; ok {
		return beginDuplicate, nil
	}
	if p, ok := s.pending[key]; ok {
		return beginInFlight, p
	}
	p := &pending{key: key, registered: true, done: make(chan struct{})}
	s.pending[key] = p
	return beginStarted, p
}

// commit records the key as stored and releases its waiters. The key is in
// memory even when writing the log fails; the error is for the caller to log.
func (s *dedupStore) commit(p *pending, now time.Time) error {
	if !p.registered {
		p.stored = true
		close(p.done)
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := dedupEntry{key: p.key, expires: now.Add(s.window).UnixNano()}
	s.insertLocked(e)
	s.releaseLocked(p)
	// The record is written before the waiting request is answered.
	err := s.appendLocked(e)
	p.stored = true
	close(p.done)
	return err
}

// abort releases the key without storing it, so a retry stores the batch.
func (s *dedupStore) abort(p *pending) {
	if !p.registered {
		close(p.done)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(p)
	close(p.done)
}

func (s *dedupStore) releaseLocked(p *pending) {
	delete(s.pending, p.key)
	if p.reserved {
		p.reserved = false
		s.promised--
	}
}

// ready makes sure the log can take p's record before p's batch enters the
// pipeline: it rewrites a stale log and reserves room on the disk. An error
// means the batch must be refused with 503 + Retry-After (the caller
// aborts p); the operator has been told what to do.
func (s *dedupStore) ready(p *pending) error {
	if !p.registered || s.path == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stale || s.file == nil {
		if err := s.compactLocked(); err != nil {
			return s.failedLocked(err)
		}
		s.stale = false
	}
	need := s.size + int64(s.promised+1)*dedupRecordSize
	if !s.noPrealloc && need > s.reservedEnd {
		n := max(dedupReserveBytes, need-s.size)
		err := preallocate(s.file, s.size, n)
		if errors.Is(err, syscall.ENOSPC) && n > need-s.size {
			n = need - s.size // nearly full: the room for what is in flight will do
			err = preallocate(s.file, s.size, n)
		}
		switch {
		case errors.Is(err, errors.ErrUnsupported):
			s.noPrealloc = true
		case err != nil:
			return s.failedLocked(fmt.Errorf("reserving room in the de-duplication log: %w", err))
		default:
			s.reservedEnd = s.size + n
		}
	}
	p.reserved = true
	s.promised++
	s.recoveredLocked()
	return nil
}

// failedLocked tells the operator, once per failure, that the log cannot
// be written and what that means; it returns err for the request.
func (s *dedupStore) failedLocked(err error) error {
	s.logErrors++
	if s.failure == nil && s.log != nil {
		s.log.Errorf("De-duplication log %q cannot be written: %v. Batches with an Idempotency-Key are answered 503 "+
			"(agents keep and retry them) until it can: free space on its filesystem, or point dedup_file elsewhere and restart",
			s.path, err)
	}
	s.failure = err
	return err
}

func (s *dedupStore) recoveredLocked() {
	if s.failure != nil && s.log != nil {
		s.log.Infof("De-duplication log %q can be written again (%d keys); accepting batches", s.path, s.count)
	}
	s.failure = nil
}

func (s *dedupStore) appendLocked(e dedupEntry) error {
	if s.path == "" {
		return nil
	}
	if s.file == nil && !s.stale {
		// Not created yet (see open): writing memory out creates it with
		// this key in it.
		if err := s.compactLocked(); err != nil {
			s.stale = true
			return s.failedLocked(err)
		}
		return nil
	}
	if s.file == nil || s.stale {
		// The next ready rewrites the log from memory, this key included.
		s.stale = true
		return errors.New("de-duplication log not writable; the key is kept in memory until it is rewritten")
	}
	var rec [dedupRecordSize]byte
	copy(rec[:16], e.key[:])
	binary.BigEndian.PutUint64(rec[16:], uint64(e.expires))
	if n, err := s.file.Write(rec[:]); err != nil {
		s.writeErrs++
		s.stale = true
		// Cut a torn record back, or every later record is misaligned.
		if n > 0 {
			if terr := s.file.Truncate(s.size); terr != nil {
				s.file.Close()
				s.file = nil
			}
		}
		return s.failedLocked(fmt.Errorf("appending to de-duplication log (%d of %d bytes written, cut back): %w", n, dedupRecordSize, err))
	}
	s.records++
	s.size += dedupRecordSize
	if s.records > max(2*max(s.count, 1024), s.nextCompaction) {
		if err := s.compactLocked(); err != nil {
			// The log on disk is still whole; try again later.
			s.nextCompaction = s.records + max(s.count, 1024)
			if s.log != nil {
				s.log.Warnf("Compacting the de-duplication log failed: %v; it keeps growing until space is freed", err)
			}
		}
	}
	return nil
}

// compactLocked rewrites the log from memory through a temporary file and a
// rename, so a crash leaves either the old or the new log.
func (s *dedupStore) compactLocked() error {
	if s.path == "" {
		return nil
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("compacting de-duplication log: %w", err)
	}
	w := bufio.NewWriterSize(f, 64*1024)
	w.WriteString(dedupMagic)
	var rec [dedupRecordSize]byte
	written := 0
	for i := 0; i < s.count; i++ {
		e := s.order[(s.first+i)%len(s.order)]
		if exp, ok := s.entries[e.key]; !ok || exp != e.expires {
			continue // superseded slot
		}
		copy(rec[:16], e.key[:])
		binary.BigEndian.PutUint64(rec[16:], uint64(e.expires))
		w.Write(rec[:])
		written++
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		// The log in place (if open) is untouched and stays in use.
		os.Remove(tmp)
		return fmt.Errorf("compacting de-duplication log %q: %w", s.path, err)
	}
	syncDir(filepath.Dir(s.path))

	if s.file != nil {
		s.file.Close()
	}
	s.file, err = os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.file = nil
		return fmt.Errorf("opening de-duplication log %q: %w", s.path, err)
	}
	s.records = written
	s.size = int64(len(dedupMagic)) + int64(written)*dedupRecordSize
	s.reservedEnd = 0
	s.nextCompaction = 0
	return nil
}

// close flushes the log to stable storage.
func (s *dedupStore) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		return nil
	}
	err := s.file.Sync()
	if cerr := s.file.Close(); err == nil {
		err = cerr
	}
	s.file = nil
	return err
}

// errors is the number of failed writes, reservations and rewrites of the
// log.
func (s *dedupStore) errors() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logErrors
}

// len is the number of keys remembered.
func (s *dedupStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync() //nolint:errcheck // best effort: the rename is done either way
		d.Close()
	}
}
