package vmware_telemetry_listener

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func key(i int) dedupKey {
	return newDedupKey("batches", "c", "i", fmt.Sprintf("k%d", i))
}

func TestDedupKeyScopes(t *testing.T) {
	base := newDedupKey("batches", "c", "i", "k")
	for _, other := range []dedupKey{
		newDedupKey("events", "c", "i", "k"),
		newDedupKey("batches", "c2", "i", "k"),
		newDedupKey("batches", "c", "i2", "k"),
		newDedupKey("batches", "c", "i", "k2"),
		// the separator keeps field boundaries: "ci"+"" != "c"+"i"
		newDedupKey("batches", "ci", "", "k"),
	} {
		require.NotEqual(t, base, other)
	}
	require.Equal(t, base, newDedupKey("batches", "c", "i", "k"))
}

func TestDedupBeginCommitAbort(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newDedupStore(time.Hour, 10)

	state, p := s.begin(key(1), now)
	require.Equal(t, beginStarted, state)

	// A second attempt while the first is in flight joins it.
	state, p2 := s.begin(key(1), now)
	require.Equal(t, beginInFlight, state)
	require.Same(t, p, p2)

	require.NoError(t, s.commit(p, now))
	<-p2.done
	require.True(t, p2.stored)

	state, _ = s.begin(key(1), now.Add(59*time.Minute))
	require.Equal(t, beginDuplicate, state)

	// After the window the key is forgotten.
	state, p3 := s.begin(key(1), now.Add(61*time.Minute))
	require.Equal(t, beginStarted, state)

	// An aborted attempt leaves the key free for the next one.
	s.abort(p3)
	<-p3.done
	require.False(t, p3.stored)
	state, _ = s.begin(key(1), now.Add(61*time.Minute))
	require.Equal(t, beginStarted, state)
}

func TestDedupBoundedByEntries(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newDedupStore(time.Hour, 100)
	commitKeys(t, s, now, 1000)
	require.Equal(t, 100, s.len())
	// The newest 100 are kept, the older ones evicted.
	state, _ := s.begin(key(999), now)
	require.Equal(t, beginDuplicate, state)
	state, _ = s.begin(key(900), now)
	require.Equal(t, beginDuplicate, state)
	state, _ = s.begin(key(899), now)
	require.Equal(t, beginStarted, state)
}

func TestDedupUnkeyedIsNeverRemembered(t *testing.T) {
	s := newDedupStore(time.Hour, 10)
	p := &pending{done: make(chan struct{})}
	require.NoError(t, s.commit(p, time.Now()))
	<-p.done
	require.True(t, p.stored)
	require.Equal(t, 0, s.len())
}

func TestDedupConcurrentRetriesStoreOnce(t *testing.T) {
	now := time.Now()
	s := newDedupStore(time.Hour, 10)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		started int
	)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				state, p := s.begin(key(7), now)
				switch state {
				case beginStarted:
					mu.Lock()
					started++
					mu.Unlock()
					runtime.Gosched()
					require.NoError(t, s.commit(p, now))
					return
				case beginInFlight:
					<-p.done
					if p.stored {
						return
					}
				case beginDuplicate:
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, started)
}

func TestDedupPersistsAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dedup.log")
	now := time.Unix(1_700_000_000, 0)

	s, n := openLog(t, path, now, 1000)
	require.Zero(t, n)
	for i := 0; i < 10; i++ {
		_, p := s.begin(key(i), now.Add(time.Duration(i)*time.Minute))
		require.NoError(t, s.commit(p, now.Add(time.Duration(i)*time.Minute)))
	}
	// No close: a killed process keeps what write(2) handed the kernel.

	later := now.Add(65 * time.Minute) // keys 0..5 expired (committed at +0..+5min)
	s2, n := openLog(t, path, later, 1000)
	require.Equal(t, 4, n)
	for i := 0; i < 10; i++ {
		state, _ := s2.begin(key(i), later)
		if i <= 5 {
			require.Equal(t, beginStarted, state, "key %d should have expired", i)
		} else {
			require.Equal(t, beginDuplicate, state, "key %d should be remembered", i)
		}
	}
	require.NoError(t, s2.close())

	// Compaction on start rewrote the log to the live entries only.
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, int64(len(dedupMagic)+4*dedupRecordSize), info.Size())
}

func TestDedupLoadSkipsTornRecord(t *testing.T) {
	path, now := logWithKeys(t, 3)

	// A crash in the middle of a write leaves a partial record.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	_, err = f.Write([]byte{1, 2, 3, 4, 5})
	require.NoError(t, err)
	require.NoError(t, f.Close())

	s2, n := openLog(t, path, now, 1000)
	require.Equal(t, 3, n)
	require.NoError(t, s2.close())
}

func TestDedupLoadKeepsNewestWithinMaxEntries(t *testing.T) {
	path, now := logWithKeys(t, 100)

	// Restarted with a smaller bound: the newest keys survive.
	s2, n := openLog(t, path, now, 10)
	require.Equal(t, 10, n)
	state, _ := s2.begin(key(99), now)
	require.Equal(t, beginDuplicate, state)
	state, _ = s2.begin(key(89), now)
	require.Equal(t, beginStarted, state)
	require.NoError(t, s2.close())
}

func TestDedupLogCompactsWhileRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dedup.log")
	now := time.Unix(1_700_000_000, 0)
	s, _ := openLog(t, path, now, 100)
	commitKeys(t, s, now, 20000)
	info, err := os.Stat(path)
	require.NoError(t, err)
	// Compaction keeps the log within 2x max(entries, 1024) records.
	require.LessOrEqual(t, info.Size(), int64(len(dedupMagic)+2*1024*dedupRecordSize+dedupRecordSize))
	require.NoError(t, s.close())

	s2, n := openLog(t, path, now, 100)
	require.Equal(t, 100, n)
	state, _ := s2.begin(key(19999), now)
	require.Equal(t, beginDuplicate, state)
	require.NoError(t, s2.close())
}

func TestDedupRefusesForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dedup.log")
	require.NoError(t, os.WriteFile(path, []byte("some other file's content"), 0o600))
	s := newDedupStore(time.Hour, 10)
	_, err := s.open(path, time.Now())
	require.ErrorContains(t, err, "not a de-duplication log")
	// The foreign file is left as it was.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "some other file's content", string(data))
}

// BenchmarkDedupCommit measures a begin+commit with the log on disk and the
// memory each remembered key costs.
func BenchmarkDedupCommit(b *testing.B) {
	path := filepath.Join(b.TempDir(), "dedup.log")
	now := time.Now()
	s := newDedupStore(time.Hour, 250000)
	_, err := s.open(path, now)
	require.NoError(b, err)
	defer s.close()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, p := s.begin(key(i), now)
		if err := s.commit(p, now); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := s.len(); n > 0 {
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n), "heap-bytes/key")
	}
}

// Starting on a new log writes nothing (`--test` and a server that never
// receives a keyed batch leave no file); the first keyed batch creates it.
func TestDedupLogCreatedOnFirstKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dedup.log")
	now := time.Unix(1_700_000_000, 0)

	s, _ := openLog(t, path, now, 1000)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "open created files")

	_, p := s.begin(key(1), now)
	require.NoError(t, s.ready(p))
	require.NoError(t, s.commit(p, now))
	require.NoError(t, s.close())

	s2, n := openLog(t, path, now, 1000)
	require.Equal(t, 1, n)
	require.NoError(t, s2.close())
}

// A log that can never be created fails at start, not at the first batch.
func TestDedupLogDirectoryMissing(t *testing.T) {
	s := newDedupStore(time.Hour, 1000)
	_, err := s.open(filepath.Join(t.TempDir(), "missing", "dedup.log"), time.Now())
	require.ErrorContains(t, err, "cannot be created")
}

// openLog opens a store of at most maxEntries keys on the log at path and
// returns it with the number of keys it loaded.
func openLog(t *testing.T, path string, now time.Time, maxEntries int) (*dedupStore, int) {
	t.Helper()
	s := newDedupStore(time.Hour, maxEntries)
	n, err := s.open(path, now)
	require.NoError(t, err)
	return s, n
}

// commitKeys stores keys 0 to n-1 at now.
func commitKeys(t *testing.T, s *dedupStore, now time.Time, n int) {
	t.Helper()
	for i := range n {
		_, p := s.begin(key(i), now)
		require.NoError(t, s.commit(p, now))
	}
}

// logWithKeys writes a closed log holding keys 0 to n-1, committed at now.
func logWithKeys(t *testing.T, n int) (path string, now time.Time) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "dedup.log")
	now = time.Unix(1_700_000_000, 0)
	s, _ := openLog(t, path, now, 1000)
	commitKeys(t, s, now, n)
	require.NoError(t, s.close())
	return path, now
}
