package testversions

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCorpus(t *testing.T) {
	c := Corpus()
	require.GreaterOrEqual(t, len(c), 200, "the privacy tests need at least 200 real-world strings")
	seen := map[string]int{}
	for _, v := range c {
		require.NotEmpty(t, v.Scheme)
		require.NotEmpty(t, v.Value, "line %d", v.Line)
		require.NotEmpty(t, v.Sent, "line %d", v.Line)
		seen[v.Scheme+"\x00"+v.Value]++
		require.Equal(t, 1, seen[v.Scheme+"\x00"+v.Value], "line %d: %q listed twice", v.Line, v.Value)
	}
	for _, s := range []string{"kubernetes", "kernel", "runtime", "os_image", "image_tag"} {
		require.NotZero(t, countScheme(c, s), s)
	}
}

func countScheme(c []Version, s string) int {
	n := 0
	for _, v := range c {
		if v.Scheme == s {
			n++
		}
	}
	return n
}

func TestParseErrors(t *testing.T) {
	_, err := parse("v1.2.3\n")
	require.ErrorContains(t, err, "before any [scheme]")
	_, err = parse("[kernel]\n 5.15.0\n")
	require.ErrorContains(t, err, "leading or trailing space")
	got, err := parse("# c\n[kubernetes]\nv1.2.3+x => v1.2.3+other\n")
	require.NoError(t, err)
	require.Equal(t, []Version{{Scheme: "kubernetes", Value: "v1.2.3+x", Sent: "v1.2.3+other", Line: 3}}, got)
}

func TestPlantAndWords(t *testing.T) {
	words := Words(rand.New(rand.NewPCG(1, 2)), 40)
	require.Len(t, words, 40)
	for _, w := range words {
		require.NotEqual(t, strings.Trim(strings.ToLower(w), "0123456789abcdef"), "", "%q could pass for a hex hash", w)
	}
	v := Version{Scheme: "os_image", Value: "Ubuntu 22.04.5 LTS", Sent: "Ubuntu 22.04.5 LTS"}
	ps := Plant(v, "Ubuntu 22.04.5", "acmecorp")
	values := map[string]bool{}
	for _, p := range ps {
		require.Contains(t, strings.ToLower(p.Value), "acmecorp", p.Form)
		values[p.Value] = true
	}
	require.True(t, values["Ubuntu 22.04.5 acmecorp LTS"])
	require.True(t, values["Ubuntu 22.04.5 LTS (acmecorp)"])
	require.True(t, values["acmecorp-Ubuntu 22.04.5 LTS"])
	require.True(t, values["Ubuntu 22.04.5+acmecorp"])
}
