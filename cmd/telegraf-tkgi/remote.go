package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/influxdata/telegraf/config"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/buildinfo"
)

// isConfigURL tells a --config URL from a file path, as telegraf does.
func isConfigURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Host != ""
}

// splitURLs separates local config files from --config URLs.
func splitURLs(files []string) (local, remote []string) {
	for _, f := range files {
		if isConfigURL(f) {
			remote = append(remote, f)
		} else {
			local = append(local, f)
		}
	}
	return local, remote
}

// stopSignal is returned when SIGTERM or SIGINT arrives while the
// configuration loads (a --config URL being retried, say). At start
// telegraf has no handler installed yet and dies of the signal, so main
// does the same; during a reload the agent stops cleanly (exit 0).
type stopSignal struct{ sig os.Signal }

func (s stopSignal) Error() string {
	return fmt.Sprintf("received %s while loading the configuration", s.sig)
}

// raise ends the process by the signal, as its default action would.
func (s stopSignal) raise() {
	sig, ok := s.sig.(syscall.Signal)
	if !ok {
		os.Exit(1)
	}
	log.Printf("I! Received %s while loading the configuration, stopping", sig)
	signal.Reset(sig)
	_ = syscall.Kill(os.Getpid(), sig)
	time.Sleep(time.Second) // the signal ends the process; this is a fallback
	os.Exit(128 + int(sig))
}

// loadConfigUntilSignal loads the configuration, returning early with a
// stopSignal on SIGTERM or SIGINT: fetching a --config URL retries for
// up to 30 s by default, longer than Kubernetes' termination grace period.
// A SIGHUP meanwhile is dropped: the load under way reads the new files.
func (o *agentOptions) loadConfigUntilSignal(signals <-chan os.Signal) (*config.Config, []string, error) {
	type loaded struct {
		c     *config.Config
		files []string
		err   error
	}
	done := make(chan loaded, 1)
	go func() {
		c, files, err := o.loadConfig()
		done <- loaded{c, files, err}
	}()
	for {
		select {
		case l := <-done:
			return l.c, l.files, l.err
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				continue
			}
			return nil, nil, stopSignal{sig}
		}
	}
}

// watchRemoteConfig asks each --config URL for its Last-Modified header
// every interval and calls onChange once when one differs from the first
// answer. A URL that sends no Last-Modified is no longer watched.
func watchRemoteConfig(ctx context.Context, urls []string, interval time.Duration, onChange func()) {
	log.Printf("I! Watching config URL(s) %s for changes every %s", strings.Join(redacted(urls), ", "), interval)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	seen := make(map[string]string, len(urls))
	watched := append([]string(nil), urls...)
	for len(watched) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		var keep []string
		for _, u := range watched {
			modified, err := lastModified(ctx, u)
			if err != nil {
				log.Printf("W! Checking config URL %s for changes failed, trying again in %s: %v", redacted([]string{u})[0], interval, err)
				keep = append(keep, u)
				continue
			}
			if modified == "" {
				log.Printf("E! Config URL %s sends no Last-Modified header: not watching it; send the header to reload on changes", redacted([]string{u})[0])
				continue
			}
			keep = append(keep, u)
			if prev, ok := seen[u]; !ok {
				seen[u] = modified
			} else if prev != modified {
				log.Printf("I! Config URL %s modified, reloading", redacted([]string{u})[0])
				onChange()
				return
			}
		}
		watched = keep
	}
}

// lastModified sends a HEAD request with the credentials telegraf sends
// when it fetches a config URL.
func lastModified(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return "", err
	}
	if v, ok := os.LookupEnv("TELEGRAF_CONTROLLER_TOKEN"); ok {
		req.Header.Set("Authorization", "Bearer "+v)
	} else if v, ok := os.LookupEnv("INFLUX_TOKEN"); ok {
		req.Header.Set("Authorization", "Token "+v)
	}
	req.Header.Set("User-Agent", "Telegraf/"+strings.TrimPrefix(buildinfo.UpstreamVersion(), "v")+" telegraf-tkgi/"+buildinfo.Version)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HEAD answered %s", resp.Status)
	}
	return resp.Header.Get("Last-Modified"), nil
}

// redacted hides passwords in URLs for the log.
func redacted(urls []string) []string {
	out := make([]string, len(urls))
	for i, s := range urls {
		if u, err := url.Parse(s); err == nil {
			out[i] = u.Redacted()
		} else {
			out[i] = s
		}
	}
	return out
}
