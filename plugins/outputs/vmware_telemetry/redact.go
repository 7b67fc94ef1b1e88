package vmware_telemetry

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// Credentials never appear in what the output logs or returns: a proxy's
// password, a password or query secret in url. URLs are shown redacted and
// error texts, which may quote a URL (a *url.Error, a proxy that does not
// parse), have every such secret replaced.

const (
	redacted       = "xxxxx"
	minQuerySecret = 6
)

// redactURL shows u without its password and with its query values hidden,
// except the output's own _c and _i.
func redactURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		if _, ok := c.User.Password(); ok {
			c.User = url.UserPassword(c.User.Username(), redacted)
		}
	}
	if c.RawQuery != "" {
		q := c.Query()
		for k, vs := range q {
			if k == telemetry.QueryCollector || k == telemetry.QueryInstance {
				continue
			}
			for i := range vs {
				vs[i] = redacted
			}
		}
		c.RawQuery = q.Encode()
	}
	return c.String()
}

func redactURLString(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return redactURL(u)
}

// urlErrorReason is the reason of a URL parse error without the URL,
// which url.Parse quotes whole.
func urlErrorReason(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// checkProxyURL validates http_proxy_url without quoting it: upstream's
// client would quote it, password included, in its error.
func checkProxyURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("http_proxy_url cannot be parsed (%w); write it as \"http://user:password@proxy:3128\"", urlErrorReason(err))
	}
	if u.Host == "" {
		return fmt.Errorf("http_proxy_url %q has no host; write it as \"http://user:password@proxy:3128\"", redactURL(u))
	}
	return nil
}

// secrets lists what must not appear in a message: the passwords of the
// proxies in use and of url, as written and decoded, and url's query values.
func (t *VMwareTelemetry) secrets() []string {
	var out []string
	add := func(raw string, withQuery bool) {
		u, err := url.Parse(raw)
		if err != nil {
			// Unparsable: hide whatever looks like user:password@.
			if at := strings.LastIndex(raw, "@"); at >= 0 {
				if i := strings.Index(raw, "://"); i >= 0 && i+3 < at {
					raw = raw[i+3 : at]
				}
				if _, pw, ok := strings.Cut(raw, ":"); ok && pw != "" {
					out = append(out, pw)
				}
			}
			return
		}
		if u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				out = append(out, pw)
				if _, enc, ok := strings.Cut(u.User.String(), ":"); ok && enc != pw {
					out = append(out, enc)
				}
			}
		}
		if withQuery {
			for k, vs := range u.Query() {
				if k == telemetry.QueryCollector || k == telemetry.QueryInstance {
					continue
				}
				for _, v := range vs {
					// Short values (a version, a flag) are no secret, and
					// replacing them would garble the message.
					if len(v) >= minQuerySecret {
						out = append(out, v, url.QueryEscape(v))
					}
				}
			}
		}
	}
	add(t.URL, true)
	add(t.HTTPProxyURL, false)
	if t.UseSystemProxy {
		for _, name := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
			if v := os.Getenv(name); v != "" {
				add(v, false)
			}
		}
	}
	return out
}

// redactError returns err with every secret replaced in its text; it
// still unwraps to err (for errors.Is), whose text is never shown.
func (t *VMwareTelemetry) redactError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range t.secrets() {
		msg = strings.ReplaceAll(msg, s, redacted)
	}
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
