package telemetry

import "regexp"

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
