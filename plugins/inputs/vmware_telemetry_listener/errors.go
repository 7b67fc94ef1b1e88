package vmware_telemetry_listener

import (
	"errors"
	"fmt"
	"net/http"
)

// httpError is a refusal with the status code the client gets and a message
// that names what was wrong; the message is the response body.
type httpError struct {
	code int
	msg  string
	err  error
}

func (e *httpError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *httpError) Unwrap() error { return e.err }

func errorf(code int, format string, args ...interface{}) *httpError {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

func wrapError(code int, err error, format string, args ...interface{}) *httpError {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...), err: err}
}

// statusOf maps any error to the status answered for it; errors that are
// not an *httpError are the client's malformed input.
func statusOf(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.code
	}
	return http.StatusBadRequest
}
