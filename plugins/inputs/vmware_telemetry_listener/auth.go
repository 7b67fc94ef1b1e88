package vmware_telemetry_listener

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/influxdata/telegraf/config"
)

// bearerAuth checks "Authorization: Bearer <token>" against the configured
// tokens. Only SHA-256 digests of the tokens are kept after Init, and the
// presented token's digest is compared with every one of them in constant
// time, so neither the token's length nor which token matched leaks through
// timing, and no plain token stays in memory.
type bearerAuth struct {
	digests [][sha256.Size]byte
}

func newBearerAuth(tokens []config.Secret) (*bearerAuth, error) {
	a := &bearerAuth{}
	for i := range tokens {
		buf, err := tokens[i].Get()
		if err != nil {
			return nil, fmt.Errorf("reading tokens[%d] failed: %w", i, err)
		}
		if len(buf.Bytes()) == 0 {
			buf.Destroy()
			return nil, fmt.Errorf("tokens[%d] is empty; remove it or set a value", i)
		}
		a.digests = append(a.digests, sha256.Sum256(buf.Bytes()))
		buf.Destroy()
	}
	return a, nil
}

func (a *bearerAuth) enabled() bool {
	return len(a.digests) > 0
}

var (
	errNoToken  = errors.New("missing bearer token: send \"Authorization: Bearer <token>\"")
	errBadToken = errors.New("bearer token not accepted")
)

func (a *bearerAuth) check(r *http.Request) error {
	if !a.enabled() {
		return nil
	}
	header := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return errNoToken
	}
	digest := sha256.Sum256([]byte(strings.TrimSpace(token)))
	match := 0
	for i := range a.digests {
		match |= subtle.ConstantTimeCompare(digest[:], a.digests[i][:])
	}
	if match != 1 {
		return errBadToken
	}
	return nil
}
