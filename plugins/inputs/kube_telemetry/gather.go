package kube_telemetry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// maxRestarts bounds how often one list starts over after its continue
	// token expired (410 Gone) within a single gather.
	maxRestarts = 3
	// maxConcurrentLists bounds the lists in flight at once. Two: the pods
	// list, by far the longest, runs beside the others, which together take
	// less time than it does, so more would not shorten a collection, and
	// the API server sees at most two requests of the agent at a time.
	maxConcurrentLists = 2
	// collectionTimeouts bounds a whole collection, in response_timeouts:
	// a list stream may last much longer than response_timeout as long as
	// bytes keep coming, but a collection must end before the next one
	// (5 minutes at the default response_timeout; a 150,000-pod
	// collection takes 10 to 20 s).
	collectionTimeouts = 30
)

// collectionTimeoutError ends a collection that outlived its bound.
type collectionTimeoutError struct {
	after time.Duration
}

func (e *collectionTimeoutError) Error() string {
	return fmt.Sprintf("the collection took longer than %s (%d times response_timeout)", e.after, collectionTimeouts)
}

// withCollectionTimeout bounds one collection.
func withCollectionTimeout(ctx context.Context, responseTimeout time.Duration) (context.Context, context.CancelFunc) {
	d := collectionTimeouts * responseTimeout
	return context.WithTimeoutCause(ctx, d, &collectionTimeoutError{after: d})
}

// result is what one resource's list produced in one gather.
type result struct {
	res      resource
	fold     fold
	items    int64
	pages    int64
	restarts int64
	duration time.Duration
	err      error
}

func (r *result) ok() bool { return r.err == nil }

// collect lists every selected resource, at most
// maxConcurrentLists at a time, and returns one result per resource in the
// order of the resource table. It returns when every list has finished: no
// goroutine outlives a gather.
func collect(ctx context.Context, c *clients, selected []resource, l listing, cfg foldConfig) []*result {
	results := make([]*result, len(selected))
	sem := make(chan struct{}, maxConcurrentLists)
	var wg sync.WaitGroup
	for i, res := range selected {
		r := &result{res: res, fold: res.newFold(cfg)}
		results[i] = r
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			r.err = listAll(ctx, c, r, l)
			r.duration = time.Since(start)
			if r.err != nil {
				r.items = 0 // a list that failed half-way counts nothing
			}
		}()
	}
	wg.Wait()
	return results
}

// listAll reads one resource, resourceVersion unset in any case (a
// consistent read; resourceVersion "0" may be stale, and ignores the limit).
// With limit 0 it is one request for the whole list; otherwise
// limit=pageSize and continue tokens, and when a token has expired (410
// Gone) the list starts over with its counters reset, at most maxRestarts
// times. An unpaginated list that breaks off starts over in pages of
// pageSize: on an overloaded API server a list of a large cluster may
// outlast the server's own request timeout, which no page does.
func listAll(ctx context.Context, c *clients, r *result, l listing) error {
	opts := metav1.ListOptions{Limit: l.limit}
	for {
		next, n, err := c.lister.listPage(ctx, r.res, opts, r.fold.item)
		if err != nil {
			if opts.Limit == 0 && l.pageSize > 0 && retryInPages(err) && ctx.Err() == nil {
				r.restarts++
				r.items = 0
				r.fold.reset()
				opts.Limit = l.pageSize
				continue
			}
			if opts.Continue != "" && isExpired(err) {
				if r.restarts >= maxRestarts {
					return newListError(r.res, &restartsExhaustedError{restarts: r.restarts, err: err})
				}
				r.restarts++
				r.items = 0
				r.fold.reset()
				opts.Continue = ""
				continue
			}
			return newListError(r.res, err)
		}
		r.pages++
		r.items += int64(n)
		if next == "" {
			return nil
		}
		if next == opts.Continue {
			// Never from a real API server; guards against looping forever.
			return newListError(r.res, errors.New("the API server returned the same continue token twice"))
		}
		opts.Continue = next
	}
}

// retryInPages reports an unpaginated list's failure that pages may avoid:
// a broken or stalled stream, a server-side timeout. Refusals (401, 403,
// 404, 429) would only repeat.
func retryInPages(err error) bool {
	return !apierrors.IsUnauthorized(err) && !apierrors.IsForbidden(err) && !apierrors.IsNotFound(err) &&
		!apierrors.IsTooManyRequests(err)
}

// isExpired reports a continue token the server no longer serves: 410 with
// reason Expired (or Gone from older servers).
func isExpired(err error) bool {
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
}

// restartsExhaustedError wraps the last 410 after the list gave up.
type restartsExhaustedError struct {
	restarts int64
	err      error
}

func (e *restartsExhaustedError) Error() string {
	return fmt.Sprintf("continue token expired again after %d restarts: %v", e.restarts, e.err)
}

func (e *restartsExhaustedError) Unwrap() error { return e.err }
