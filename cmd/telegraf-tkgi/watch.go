package main

import (
	"context"
	"crypto/sha256"
	"log"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/fsnotify.v1"
)

// fileState identifies a config file's content. Hashing the content rather
// than trusting mtime catches Kubernetes ConfigMap updates, which swap a
// symlink and leave the target's mtime unrelated to the change.
type fileState [sha256.Size]byte

func snapshot(files []string) map[string]fileState {
	states := make(map[string]fileState, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // a missing file differs from a present one
		}
		states[f] = sha256.Sum256(data)
	}
	return states
}

func changed(before, after map[string]fileState) bool {
	if len(before) != len(after) {
		return true
	}
	for f, s := range before {
		if after[f] != s {
			return true
		}
	}
	return false
}

// watchFiles calls onChange once when the content of any of the files
// changes. With mode "inotify" it wakes on events in the files' directories
// (to see editors' rename-over and ConfigMap symlink swaps); with "poll" it
// checks every interval.
func watchFiles(ctx context.Context, files []string, mode string, interval time.Duration, onChange func()) {
	before := snapshot(files)
	wake := make(chan struct{}, 1)

	if mode == "inotify" {
		watcher, err := fsnotify.NewWatcher()
		if err != nil {
			log.Printf("E! Watching config files failed, falling back to polling: %v", err)
		} else {
			defer watcher.Close()
			dirs := make(map[string]bool)
			for _, f := range files {
				dirs[filepath.Dir(f)] = true
			}
			for dir := range dirs {
				if err := watcher.Add(dir); err != nil {
					log.Printf("E! Watching config directory %s failed: %v", dir, err)
				}
			}
			go func() {
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
		}
	}
	log.Printf("I! Watching %d config file(s) for changes (%s)", len(files), mode)

	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-ticker.C:
		}
		if changed(before, snapshot(files)) {
			log.Printf("I! Config file changed, reloading")
			onChange()
			return
		}
	}
}
