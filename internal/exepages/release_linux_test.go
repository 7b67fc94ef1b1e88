package exepages

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

const smapsSample = `00400000-02723000 r-xp 00000000 fe:00 10461256                           /opt/bin/telegraf-tkgi
Size:              35980 kB
Rss:               24332 kB
Anonymous:             0 kB
02723000-04f42000 r--p 02323000 fe:00 10461256                           /opt/bin/telegraf-tkgi
Size:              40060 kB
Rss:               23164 kB
Anonymous:             0 kB
04f42000-0502b000 rw-p 04b42000 fe:00 10461256                           /opt/bin/telegraf-tkgi
Size:                932 kB
Rss:                 804 kB
Anonymous:           220 kB
05100000-05200000 r--p 04c00000 fe:00 10461256                           /opt/bin/telegraf-tkgi
Size:               1024 kB
Rss:                 128 kB
Anonymous:             4 kB
06000000-06100000 r--p 00000000 fe:00 10461257                           /opt/bin/telegraf-tkgi old
Size:               1024 kB
Rss:                 512 kB
Anonymous:             0 kB
0502b000-0708d000 rw-p 00000000 00:00 0
Size:              33160 kB
Rss:                2216 kB
Anonymous:          2216 kB
7f13f7366000-7f13f74bc000 r-xp 00000000 fe:00 42                         /usr/lib/x86_64-linux-gnu/libc.so.6
Size:               1368 kB
Rss:                 536 kB
Anonymous:             0 kB
`

func TestReadMappings(t *testing.T) {
	tests := []struct {
		name      string
		path      string
		want      []string // "perms rssKB droppable"
		wantBytes int64
	}{
		{
			name: "executable",
			path: "/opt/bin/telegraf-tkgi",
			// The rw-p data segment and the read-only segment with a
			// privately modified page (RELRO) stay.
			want:      []string{"r-xp 24332 true", "r--p 23164 true", "rw-p 804 false", "r--p 128 false"},
			wantBytes: (24332 + 23164) << 10,
		},
		{
			name:      "path with a space",
			path:      "/opt/bin/telegraf-tkgi old",
			want:      []string{"r--p 512 true"},
			wantBytes: 512 << 10,
		},
		{name: "not mapped", path: "/opt/bin/other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			maps, err := readMappings(strings.NewReader(smapsSample), tt.path)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			var bytes int64
			for _, m := range maps {
				got = append(got, strings.Join([]string{m.perms, itoa(m.rssKB), boolString(m.droppable())}, " "))
				if m.droppable() {
					bytes += m.rssKB << 10
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("mappings = %q, want %q", got, tt.want)
			}
			if bytes != tt.wantBytes {
				t.Errorf("droppable bytes = %d, want %d", bytes, tt.wantBytes)
			}
		})
	}
}

func TestReadMappingsRejectsGarbage(t *testing.T) {
	for _, in := range []string{
		"zz-02723000 r-xp 00000000 fe:00 1 /x\n",
		"00400000-02723000 r-xp 00000000 fe:00 1 /x\nRss: many kB\n",
	} {
		if _, err := readMappings(strings.NewReader(in), "/x"); err == nil {
			t.Errorf("readMappings(%q) succeeded, want an error", in)
		}
	}
}

// TestRelease drops this test binary's pages for real and checks that the
// resident set of its code shrank and the process still runs code that was
// resident before.
func TestRelease(t *testing.T) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	before := residentKB(t, exe)
	r, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	if r.Mappings == 0 || r.Bytes == 0 {
		t.Fatalf("released %+v, want at least the code mapping", r)
	}
	after := residentKB(t, exe)
	if after >= before {
		t.Errorf("resident executable pages %d kB after release, %d kB before", after, before)
	}
	// The code residentKB ran after the release (parsing, strconv) faulted
	// back in from the page cache: the process is intact.
	t.Logf("released %d mappings, %d kB; executable resident %d kB -> %d kB", r.Mappings, r.Bytes>>10, before, after)
}

func residentKB(t *testing.T, exe string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	maps, err := readMappings(f, exe)
	if err != nil {
		t.Fatal(err)
	}
	var kb int64
	for _, m := range maps {
		kb += m.rssKB
	}
	return kb
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
