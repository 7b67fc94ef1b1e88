package telemetry

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// VersionScheme is one [versions.<name>] of the dictionary: how a version
// string of one kind (a Kubernetes release, a kernel, a container runtime,
// an OS image, an image tag) is split into what may be sent. Entries refer
// to it with version = "<name>".
//
// The core, matched at the start of the value, is made of numbers and fixed
// words, so it cannot carry a customer's name; it is always sent. The rest
// of the value is sent only when it is, as a whole, one of the tokens: the
// build and vendor suffixes that distributions ship ("+vmware.1",
// "-eks-5e0fdde", ".amzn2023.x86_64"). Any other rest, the place where a
// site or cluster name would sit ("v1.28.5+acme-prod"), is replaced by
// Other ("v1.28.5+other"). A value without a core is OtherValue.
type VersionScheme struct {
	Meaning string         `toml:"meaning"`
	Core    string         `toml:"core"`
	Other   string         `toml:"other"`
	Tokens  []VersionToken `toml:"tokens"`

	core   *regexp.Regexp // ^(?:Core)
	tokens *regexp.Regexp // ^(?:token|token|...)$
}

// VersionToken is a build or vendor suffix a version scheme sends as is.
type VersionToken struct {
	// Token is a regular expression the whole rest after the core must
	// match.
	Token string `toml:"token"`
	// By says who ships it, for the documentation.
	By string `toml:"by"`
}

// maxVersionLen bounds a version string that may be sent; longer values
// are OtherValue (no real version comes near it).
const maxVersionLen = 128

func (s *VersionScheme) prepare() error {
	if s == nil {
		return errors.New("empty scheme")
	}
	if strings.TrimSpace(s.Meaning) == "" {
		return errors.New("meaning is empty; say in one line what it versions")
	}
	if s.Core == "" {
		return errors.New("core is missing: the pattern of the part always sent")
	}
	core, err := regexp.Compile(`^(?:` + s.Core + `)`)
	if err != nil {
		return fmt.Errorf("core: %w", err)
	}
	if strings.TrimLeft(s.Other, " +-_.~") != OtherValue || s.Other == OtherValue {
		return fmt.Errorf("other %q: use %q after a separator (' ', '+', '-', '_', '.' or '~'), e.g. \"+other\"", s.Other, OtherValue)
	}
	alts := make([]string, 0, len(s.Tokens))
	for i, t := range s.Tokens {
		if t.Token == "" {
			return fmt.Errorf("tokens[%d]: token is empty", i)
		}
		if _, err := regexp.Compile(t.Token); err != nil {
			return fmt.Errorf("tokens[%d] %q: %w", i, t.Token, err)
		}
		if strings.TrimSpace(t.By) == "" {
			return fmt.Errorf("tokens[%d] %q: by is empty; say which distribution ships it", i, t.Token)
		}
		alts = append(alts, `(?:`+t.Token+`)`)
	}
	s.core = core
	if len(alts) > 0 {
		s.tokens = regexp.MustCompile(`^(?:` + strings.Join(alts, "|") + `)$`)
	}
	if s.tokens != nil && s.tokens.MatchString(s.Other) {
		return fmt.Errorf("other %q is also a token: it must stand out", s.Other)
	}
	return nil
}

// Split returns the core of v, its rest, and whether the rest is one of the
// scheme's tokens (or empty). ok is false when v has no core.
func (s *VersionScheme) Split(v string) (core, rest string, allowed, ok bool) {
	loc := s.core.FindStringIndex(v)
	if loc == nil || loc[1] == 0 {
		return "", "", false, false
	}
	core, rest = v[:loc[1]], v[loc[1]:]
	return core, rest, rest == "" || (s.tokens != nil && s.tokens.MatchString(rest)), true
}

// keep returns what is sent of v: v itself when its rest is a token, its
// core followed by Other when the rest is anything else, OtherValue when v
// has no core or is longer than any version; and whether v was kept with a
// vendor token (a non-empty rest that is one of the tokens).
func (s *VersionScheme) keep(v string) (out string, vendor bool) {
	if len(v) > maxVersionLen {
		return OtherValue, false
	}
	core, rest, allowed, ok := s.Split(v)
	switch {
	case !ok:
		return OtherValue, false
	case allowed:
		return v, rest != ""
	}
	return core + s.Other, false
}

// VersionSchemeNames returns the scheme names in dictionary order.
func (d *Dictionary) VersionSchemeNames() []string { return d.versionOrder }
