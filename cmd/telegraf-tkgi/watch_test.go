package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSnapshotDifferences(t *testing.T) {
	dir := t.TempDir()
	confDir := filepath.Join(dir, "telegraf.d")
	require.NoError(t, os.MkdirAll(filepath.Join(confDir, "..data"), 0o700))
	main := writeFile(t, dir, "telegraf.conf", "[[inputs.mem]]\n")
	w := watchSet{files: []string{main}, dirs: []string{confDir}}
	base := w.snapshot()

	a := writeFile(t, confDir, "a.conf", "[[inputs.cpu]]\n")
	writeFile(t, confDir, "notes.txt", "not a config")
	writeFile(t, filepath.Join(confDir, "..data"), "hidden.conf", "ConfigMap internals are skipped")
	added := w.snapshot()
	require.Equal(t, []string{"I! Config file " + a + " added"}, differences(base, added))

	writeFile(t, dir, "telegraf.conf", "[[inputs.disk]]\n")
	require.NoError(t, os.Remove(a))
	require.Equal(t, []string{
		"I! Config file " + main + " modified",
		"W! Config file " + a + " removed",
	}, differences(added, w.snapshot()))
	require.Empty(t, differences(base, base))
}

func TestNormalizeWatchMode(t *testing.T) {
	for value, want := range map[string]string{
		"": "", "notify": watchNotify, "inotify": watchNotify, "poll": watchPoll,
		"fsevents": watchNotify, // telegraf watches with notify for any value but poll
	} {
		require.Equal(t, want, normalizeWatchMode(value), value)
	}
}

// A burst of changes within the debounce interval reloads once, after the
// last of them.
func TestWatchConfigDebouncesBursts(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "telegraf.conf", "a")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan time.Time, 10)
	done := make(chan struct{})
	go func() {
		watchConfig(ctx, watchSet{files: []string{conf}}, nil, watchPoll, 10*time.Millisecond, 300*time.Millisecond,
			func() { changes <- time.Now() })
		close(done)
	}()
	var last time.Time
	for _, content := range []string{"", "b", "bc"} {
		// Writes 50 ms apart (five polls): an editor's burst, each step a
		// change the debounce has to absorb.
		writeFile(t, dir, "telegraf.conf", content)
		last = time.Now()
		select {
		case <-changes:
			require.FailNow(t, "reloaded before the files settled")
		case <-time.After(50 * time.Millisecond):
		}
	}
	select {
	case at := <-changes:
		require.GreaterOrEqual(t, at.Sub(last), 300*time.Millisecond)
	case <-time.After(10 * time.Second):
		require.FailNow(t, "no reload after the files settled")
	}
	<-done
	require.Empty(t, changes)
}

// A change made after the configuration was read but before the watcher
// started (a file written while the new agent loaded) still reloads.
func TestWatchConfigCatchesChangesSinceBaseline(t *testing.T) {
	for _, mode := range []string{watchPoll, watchNotify} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			conf := writeFile(t, dir, "telegraf.conf", "")
			w := watchSet{files: []string{conf}}
			baseline := w.snapshot()
			writeFile(t, dir, "telegraf.conf", "[[inputs.mem]]\n")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			changed := make(chan struct{}, 1)
			go watchConfig(ctx, w, baseline, mode, time.Hour, 0, func() { changed <- struct{}{} })
			select {
			case <-changed:
			case <-time.After(10 * time.Second):
				require.FailNow(t, "the change made before the watcher started was missed")
			}

			// Without a difference from the baseline nothing happens.
			quiet := make(chan struct{}, 1)
			go watchConfig(ctx, w, w.snapshot(), mode, time.Hour, 0, func() { quiet <- struct{}{} })
			select {
			case <-quiet:
				require.FailNow(t, "reloaded with nothing changed")
			case <-time.After(300 * time.Millisecond):
			}
		})
	}
}
