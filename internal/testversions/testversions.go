// Package testversions gives the privacy tests their corpus of real-world
// version strings (versions.txt: kubelet and server versions, kernels,
// container runtimes, OS images and image tags read in public release notes,
// tags and node listings, each group with its source) and the customer words
// they plant into those strings' suffixes. The agent's policy, its output
// and the listener are each tested against the same corpus and plantings,
// so both ends agree.
package testversions

import (
	"bufio"
	_ "embed"
	"fmt"
	"math/rand/v2"
	"strings"
)

//go:embed versions.txt
var corpus string

// Version is one corpus string.
type Version struct {
	// Scheme is the data dictionary's version scheme, e.g. "kernel".
	Scheme string
	// Value is the string as seen in the source.
	Value string
	// Sent is what standard must send: Value itself, or what the line
	// gives after "=>".
	Sent string
	// Line is the line of versions.txt, for messages.
	Line int
}

// Corpus returns the strings of versions.txt in file order. It panics on a
// malformed file, which TestCorpus rules out.
func Corpus() []Version {
	out, err := parse(corpus)
	if err != nil {
		panic(err)
	}
	return out
}

func parse(text string) ([]Version, error) {
	var out []Version
	scheme := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			scheme = line[1 : len(line)-1]
			continue
		case scheme == "":
			return nil, fmt.Errorf("versions.txt:%d: a string before any [scheme]", n)
		}
		if line != strings.TrimSpace(line) {
			return nil, fmt.Errorf("versions.txt:%d: leading or trailing space in %q", n, line)
		}
		v := Version{Scheme: scheme, Value: line, Sent: line, Line: n}
		if value, sent, ok := strings.Cut(line, " => "); ok {
			v.Value, v.Sent = value, sent
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

// Planting is a corpus string with a customer word planted in it.
type Planting struct {
	// Value is what a node or the API server would report.
	Value string
	// Word is the customer word planted; it must not be sent.
	Word string
	// Form names where it was planted, for messages.
	Form string
	// KeepsCore says whether the string still starts with its core: the
	// core must then still be sent.
	KeepsCore bool
}

// Plant returns v with word planted in every position and form where a
// build suffix could carry it: after the vendor token with each separator,
// between the core and the token, instead of the token, glued to it, in
// front of the whole string; for OS images also as words and in
// parentheses after the distribution. core is the part of v.Value the
// dictionary's scheme always sends.
func Plant(v Version, core, word string) []Planting {
	rest := strings.TrimPrefix(v.Value, core)
	var out []Planting
	add := func(form, value string, keepsCore bool) {
		out = append(out, Planting{Value: value, Word: word, Form: form, KeepsCore: keepsCore})
	}
	for _, sep := range []string{"+", "-", ".", "~", "_"} {
		add("after token "+sep, core+rest+sep+word, true)
		add("before token "+sep, core+sep+word+rest, true)
		add("instead of token "+sep, core+sep+word, true)
	}
	add("site and stage", core+rest+"-"+word+"-prod-01", true)
	add("glued", core+rest+word, true)
	add("upper case", core+rest+"+"+strings.ToUpper(word), true)
	add("prefix", word+"-"+v.Value, false)
	if strings.Contains(v.Value, " ") || v.Scheme == "os_image" {
		add("word after the name", core+" "+word+rest, true)
		add("word at the end", core+rest+" "+word, true)
		add("in parentheses", core+rest+" ("+word+")", true)
		add("company edition", core+rest+" "+word+" Edition", true)
	}
	return out
}

// Words returns n customer-like words: company, site and cluster names,
// half of them the names real reports use, half random. Random words are
// made of letters outside a-f so that no word can pass for a hexadecimal
// build hash (which the OpenShift and EKS tokens are; see the dictionary).
func Words(r *rand.Rand, n int) []string {
	named := []string{"acmecorp", "contoso", "bigbank", "globex", "initech", "Umbrella", "zurich-dc2", "payments-prod", "tenant42"}
	out := make([]string, 0, n)
	for range n {
		if r.IntN(2) == 0 {
			out = append(out, named[r.IntN(len(named))])
			continue
		}
		const letters = "ghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ"
		var b strings.Builder
		for range 5 + r.IntN(8) {
			b.WriteByte(letters[r.IntN(len(letters))])
		}
		out = append(out, b.String())
	}
	return out
}
