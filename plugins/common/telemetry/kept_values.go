package telemetry

import (
	"regexp"
	"unicode/utf8"
)

// embeddedIdentifier finds identifying values inside a string that a
// dictionary pattern or version scheme lets through: a host name, an
// address or an id ("v1.2.3+node7.corp.example.com", a version core
// "5.15.0-10.0.0.7"). A kept value containing one is sent as OtherValue
// (and refused by the listener). Bare words, such as a user name or a site
// name, cannot be told from other words: version schemes keep them out by
// sending only the suffixes distributions ship (see VersionScheme), other
// keys by tight values and patterns.
var embeddedIdentifier = regexp.MustCompile(`` +
	`(?:(?:^|[^0-9.])\d{1,3}(?:\.\d{1,3}){3}(?:$|[^0-9]))` + // IPv4
	`|(?:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)` + // IPv6: two colons close together ("containerd://" has none)
	`|@` + // e-mail, user@host
	`|(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})` + // UUID: object UIDs
	`|(?:[A-Za-z][0-9A-Za-z-]*\.[A-Za-z][0-9A-Za-z-]*\.[A-Za-z]{2,})`, // host name with a domain
)

// embedsIdentifier reports whether s contains an identifying value.
func embedsIdentifier(s string) bool { return hasHexID(s) || embeddedIdentifier.MatchString(s) }

// hasHexID reports a run of hex digits that looks like an id: 16 or more
// (object UIDs without dashes, container ids, digests), or as long as a
// pseudonym (which is also a short container id) with both digits and
// letters, so that all-digit runs such as the 14-digit timestamp of a Go
// pseudo-version stay allowed.
func hasHexID(s string) bool {
	run, digits := 0, 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			switch c := s[i]; {
			case c >= '0' && c <= '9':
				run++
				digits++
				continue
			case c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
				run++
				continue
			}
		}
		if run >= 16 || (run >= PseudonymLength && digits > 0 && digits < run) {
			return true
		}
		run, digits = 0, 0
	}
	return false
}

const maxMatchCache = 4096

// keep returns what is sent of a kept string value: the value itself when
// its values, pattern or version scheme allow it, the version scheme's
// reduction of it (core and Other), else OtherValue; OtherValue stays
// itself. A value a pattern or scheme lets through must not embed an
// identifier either (see embedsIdentifier). A tag value must also be one
// line protocol can carry (printable UTF-8, no trailing backslash), so the
// encoder need not check views again.
func (e *Entry) keep(v string) string {
	if v == OtherValue {
		return v
	}
	if e.values != nil {
		if _, ok := e.values[v]; ok { // listed values were checked when parsed
			return v
		}
		if e.scheme == nil {
			return OtherValue
		}
	}
	if e.re == nil && e.scheme == nil && !e.isTag {
		return v
	}
	if out, hit := e.matched.Load(v); hit {
		return out.(string)
	}
	out, screen := v, e.re != nil
	switch {
	case e.scheme != nil:
		var vendor bool
		out, vendor = e.scheme.keep(v)
		// A core followed by a distribution's token is that
		// distribution's release, even where its numbers look like an
		// address (Azure Linux's kernel 6.6.130.1-3.azl3); a bare core
		// could be anything a customer typed.
		screen = !vendor
	case e.re != nil && !e.re.MatchString(v):
		out = OtherValue
	}
	if out != OtherValue && ((screen && embedsIdentifier(out)) || (e.isTag && !validTagValue(out))) {
		out = OtherValue
	}
	// Values longer than any version are not remembered: the listener
	// must not keep what a client chose.
	if len(v) <= 2*maxVersionLen && e.nMatched.Add(1) <= maxMatchCache {
		e.matched.Store(v, out)
	}
	return out
}

// allows reports whether a kept string value may be sent as it is: exactly
// the values keep leaves unchanged, so the listener accepts what the agent
// sends and nothing else.
func (e *Entry) allows(v string) bool { return e.keep(v) == v }

// validTagValue: what lineprotocol.Encoder accepts as a tag value.
func validTagValue(s string) bool {
	return utf8.ValidString(s) && validKey(s)
}
