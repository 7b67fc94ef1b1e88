package kube_telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// apiError is a failed request for one resource. Its message names the
// resource and, where the cause is known, what to do about it: for a 403 the
// exact RBAC rule the agent's ServiceAccount lacks.
type apiError struct {
	action string // "listing pods", "getting namespace kube-system"
	verb   string // RBAC verb: "list", "get"
	res    resource
	// name is the one object a get needs, for a rule with resourceNames.
	name string
	// advice follows the hint of a 403: what else the operator may do.
	advice string
	err    error
}

func newListError(res resource, err error) error {
	return &apiError{action: "listing " + res.name, verb: "list", res: res, err: err}
}

func (e *apiError) Error() string {
	h := hint(e.verb, e.res, e.name, e.err)
	if e.advice != "" && apierrors.IsForbidden(e.err) {
		h = strings.TrimSuffix(h, ": ") + "; " + e.advice + ": "
	}
	return fmt.Sprintf("%s failed: %s%v", e.action, h, e.err)
}

func (e *apiError) Unwrap() error { return e.err }

// hint says what the error means for the operator, ending in ": " so the
// server's own message follows.
func hint(verb string, res resource, name string, err error) string {
	var exhausted *restartsExhaustedError
	var stalled *stalledError
	var over *collectionTimeoutError
	var netErr net.Error
	switch {
	case errors.As(err, &stalled):
		return "stalled: raise response_timeout if the API server is overloaded (an unpaginated list may take 6 times response_timeout to start): "
	case errors.As(err, &over):
		return "timed out: the whole collection is bounded; raise response_timeout or check the API server's load: "
	case errors.As(err, &exhausted):
		return "gone: the list outlived its continue token (etcd compaction) on every try; it is too slow: raise page_size or check the API server's load: "
	case apierrors.IsForbidden(err):
		if name != "" {
			return fmt.Sprintf("forbidden: grant %q on %q named %q (%s, apiGroup %q) to the agent's ServiceAccount: ",
				verb, res.name, name, scope(res), res.group)
		}
		return fmt.Sprintf("forbidden: grant %q on %q (%s, apiGroup %q) to the agent's ServiceAccount: ",
			verb, res.name, scope(res), res.group)
	case apierrors.IsUnauthorized(err):
		return "unauthorized: the API server rejected the agent's credentials; check bearer_token, bearer_token_file or the kubeconfig user: "
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("not served: the API server has no %q in %q; drop it with resource_exclude: ", res.name, apiVersion(res))
	case apierrors.IsTooManyRequests(err):
		return "throttled: the API server's priority and fairness rejected the request; raise page_size or the collection interval: "
	case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return "timed out: raise response_timeout or lower page_size: "
	}
	return ""
}

func scope(res resource) string {
	if res.namespaced {
		return "all namespaces"
	}
	return "cluster scope"
}

func apiVersion(res resource) string {
	if res.group == "" {
		return res.version
	}
	return res.group + "/" + res.version
}
