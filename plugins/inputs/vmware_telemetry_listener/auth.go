package vmware_telemetry_listener

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/influxdata/telegraf/config"
)

// minTokenLength is the shortest token Init accepts: a bearer token is the
// only thing between the internet and the lake, so it must not be
// guessable ("openssl rand -hex 32" gives 64 characters).
const minTokenLength = 16

// bearerAuth checks "Authorization: Bearer <token>" against the tokens of
// each endpoint: the agents' tokens for batches, the platform API's for
// events. Only SHA-256 digests of the tokens are kept after Init, and the
// presented token's digest is compared with every digest of both endpoints
// in constant time, so neither the token's length nor which token matched
// leaks through timing, and no plain token stays in memory.
//
// An endpoint without tokens accepts any client (Init allows that only
// with allow_anonymous).
type bearerAuth struct {
	digests [2][][sha256.Size]byte // by endpoint
}

// unexpanded finds a "${NAME}" Telegraf left as is because the environment
// variable was not set. Only that shape is quoted in the error, never the
// rest of the token.
var unexpanded = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

// addTokens reads the tokens of one endpoint; key names the option in
// errors. A token is trimmed of surrounding white space (a secret read
// from a file often ends with a newline). No error quotes a token.
func (a *bearerAuth) addTokens(ep endpoint, key string, tokens []config.Secret) error {
	for i := range tokens {
		buf, err := tokens[i].Get()
		if err != nil {
			return fmt.Errorf("reading %s[%d] failed: %w", key, i, err)
		}
		token := strings.TrimSpace(buf.String())
		buf.Destroy()
		if ref := unexpanded.FindString(token); ref != "" {
			return fmt.Errorf("%s[%d] holds an unexpanded %q; set that environment variable", key, i, ref)
		}
		if strings.Contains(token, "${") {
			return fmt.Errorf("%s[%d] holds an unexpanded \"${\"; set the environment variable it names", key, i)
		}
		if token == "" {
			return fmt.Errorf("%s[%d] is empty; remove it or set a value", key, i)
		}
		if len(token) < minTokenLength {
			return fmt.Errorf("%s[%d] is shorter than %d characters; use a random token, e.g. from \"openssl rand -hex 32\"",
				key, i, minTokenLength)
		}
		a.digests[ep] = append(a.digests[ep], sha256.Sum256([]byte(token)))
	}
	return nil
}

// credentialWords mark a query parameter that carries a credential.
var credentialWords = []string{"token", "secret", "password", "passwd", "apikey", "api_key", "auth", "signature"}

// credentialInQuery says which credential word a query parameter's name
// holds ("" if none). The listener takes credentials only from the
// Authorization header: a URL is logged by proxies, load balancers and
// clients, so a request carrying one there is refused, without echoing it.
func credentialInQuery(rawQuery string) string {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		name, _, _ := strings.Cut(pair, "=")
		if unescaped, err := url.QueryUnescape(name); err == nil {
			name = unescaped
		}
		lower := strings.ToLower(name)
		for _, w := range credentialWords {
			if strings.Contains(lower, w) {
				return w // not the name: it may hold the secret too
			}
		}
	}
	return ""
}

func (a *bearerAuth) enabled(ep endpoint) bool {
	return len(a.digests[ep]) > 0
}

// Refusals: 401 when the client did not prove who it is (no token, or one
// no endpoint knows), 403 when it did but its token belongs to the other
// endpoint (an agent's token on the events path or the reverse).
var (
	errNoToken       = errors.New("missing bearer token: send \"Authorization: Bearer <token>\"")
	errBadToken      = errors.New("bearer token not accepted")
	errOtherEndpoint = errors.New("this token is not valid for this endpoint")
)

func (a *bearerAuth) check(r *http.Request, ep endpoint) error {
	if !a.enabled(ep) {
		return nil
	}
	header := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return errNoToken
	}
	digest := sha256.Sum256([]byte(token))
	var match [2]int
	for e := range a.digests {
		for i := range a.digests[e] {
			match[e] |= subtle.ConstantTimeCompare(digest[:], a.digests[e][i][:])
		}
	}
	switch {
	case match[ep] == 1:
		return nil
	case match[1-ep] == 1:
		return errOtherEndpoint
	default:
		return errBadToken
	}
}
