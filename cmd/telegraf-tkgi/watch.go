package main

import (
	"context"
	"crypto/sha256"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/fsnotify.v1"

	"github.com/influxdata/telegraf/config"
)

// defaultPollInterval is how often --watch-config poll looks at the files
// when --watch-interval is not given, as with telegraf.
const defaultPollInterval = 250 * time.Millisecond

// watchModes are the --watch-config values: "notify" wakes on file system
// events (inotify on Linux), "poll" checks every --watch-interval.
// telegraf treats every value but "poll" as notify.
const (
	watchNotify = "notify"
	watchPoll   = "poll"
)

// normalizeWatchMode maps a --watch-config value to a mode, warning about
// values telegraf accepts silently as notify.
func normalizeWatchMode(value string) string {
	switch value {
	case "":
		return ""
	case watchPoll:
		return watchPoll
	case watchNotify, "inotify":
		return watchNotify
	default:
		log.Printf("W! Unknown --watch-config %q, watching with 'notify'; use 'notify' or 'poll'", value)
		return watchNotify
	}
}

// watchSet is what a running agent watches: the local files it loaded and
// the --config-directory folders, whose *.conf files may come and go.
type watchSet struct {
	files []string
	dirs  []string
}

// fileState identifies a config file's content. Hashing the content rather
// than trusting mtime catches Kubernetes ConfigMap updates, which swap a
// symlink and leave the target's mtime unrelated to the change.
type fileState [sha256.Size]byte

// snapshot hashes the watched files and every *.conf file now in the
// watched directories; a file that cannot be read is absent.
func (w watchSet) snapshot() map[string]fileState {
	paths := append([]string(nil), w.files...)
	for _, dir := range w.dirs {
		found, err := config.WalkDirectory(dir)
		if err == nil {
			paths = append(paths, found...)
		}
	}
	states := make(map[string]fileState, len(paths))
	for _, f := range paths {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		states[f] = sha256.Sum256(data)
	}
	return states
}

// differences names the files that changed between two snapshots, as log
// lines for the operator.
func differences(before, after map[string]fileState) []string {
	var lines []string
	for f, s := range after {
		old, ok := before[f]
		switch {
		case !ok:
			lines = append(lines, "I! Config file "+f+" added")
		case old != s:
			lines = append(lines, "I! Config file "+f+" modified")
		}
	}
	for f := range before {
		if _, ok := after[f]; !ok {
			lines = append(lines, "W! Config file "+f+" removed")
		}
	}
	sort.Strings(lines)
	return lines
}

// notifyDirs lists the folders whose events can change the snapshot: the
// folder of each file (editors replace files by renaming, ConfigMaps swap
// a symlink) and each watched directory with its sub-folders.
func (w watchSet) notifyDirs() []string {
	set := make(map[string]bool)
	for _, f := range w.files {
		set[filepath.Dir(f)] = true
	}
	for _, dir := range w.dirs {
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				if path != dir && strings.HasPrefix(d.Name(), "..") {
					return filepath.SkipDir
				}
				set[path] = true
			}
			return nil
		})
	}
	dirs := make([]string, 0, len(set))
	for d := range set {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	return dirs
}

// watchConfig calls onChange once when a watched file changes, or a *.conf
// file appears in or leaves a watched directory. With a debounce interval
// it waits until nothing changed for that long, so that an editor that
// truncates and then writes causes one reload with the complete file.
// baseline, if given, is the state the running configuration was read
// from: a change between that read and the watcher's start is a change too.
func watchConfig(ctx context.Context, w watchSet, baseline map[string]fileState, mode string, interval, debounce time.Duration, onChange func()) {
	last := baseline
	if last == nil {
		last = w.snapshot()
	}
	wake := make(chan struct{}, 1)
	var tick <-chan time.Time

	var watcher *fsnotify.Watcher
	watched := make(map[string]bool)
	if mode == watchNotify {
		dirs := w.notifyDirs()
		for _, dir := range dirs {
			watched[dir] = true
		}
		var err error
		if watcher, err = notifyOn(ctx, dirs, wake); err != nil {
			log.Printf("E! Watching config files with notify failed, polling every %s instead: %v", defaultPollInterval, err)
			mode = watchPoll
		}
	}
	if mode == watchPoll {
		if interval <= 0 {
			interval = defaultPollInterval
		}
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		tick = ticker.C
	}
	log.Printf("I! Watching %d config file(s) and %d config directory(s) for changes (%s)", len(w.files), len(w.dirs), mode)
	if baseline != nil {
		// Compare with the baseline now that the watcher runs: later
		// changes raise events, earlier ones only show in the files.
		wake <- struct{}{}
	}

	var settled <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-settled:
			log.Printf("I! Config unchanged for %s, reloading", debounce)
			onChange()
			return
		case <-wake:
			if watcher == nil {
				break // the first comparison with the baseline, polling
			}
			// A new sub-folder of a watched directory is watched too.
			for _, dir := range w.notifyDirs() {
				if !watched[dir] && watcher.Add(dir) == nil {
					watched[dir] = true
					log.Printf("D! Watching new config folder %s", dir)
				}
			}
		case <-tick:
		}
		now := w.snapshot()
		lines := differences(last, now)
		if len(lines) == 0 {
			continue
		}
		for _, line := range lines {
			log.Print(line)
		}
		last = now
		if debounce <= 0 {
			log.Printf("I! Config changed, reloading")
			onChange()
			return
		}
		settled = time.After(debounce)
	}
}

// notifyOn signals wake on every file system event in dirs until ctx ends;
// more folders can be added to the watcher it returns.
func notifyOn(ctx context.Context, dirs []string, wake chan<- struct{}) (*fsnotify.Watcher, error) {
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	for _, dir := range dirs {
		if err := watcher.Add(dir); err != nil {
			watcher.Close()
			return nil, err
		}
	}
	go func() {
		defer watcher.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-watcher.Events:
				if !ok {
					return
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			case err, ok := <-watcher.Errors:
				if !ok {
					return
				}
				log.Printf("W! Config watcher: %v", err)
			}
		}
	}()
	return watcher, nil
}
