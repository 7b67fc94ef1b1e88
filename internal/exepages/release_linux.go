package exepages

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Release drops the resident pages of the executable's read-only mappings
// (code and read-only data). A mapping with any privately modified page (a
// RELRO segment a dynamic loader wrote before making it read-only) is kept:
// MADV_DONTNEED would throw the modification away.
func Release() (Released, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return Released{}, fmt.Errorf("finding the executable failed: %w", err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return Released{}, fmt.Errorf("reading the memory map failed: %w", err)
	}
	maps, err := readMappings(f, exe)
	f.Close()
	if err != nil {
		return Released{}, err
	}
	var r Released
	for _, m := range maps {
		if !m.droppable() {
			continue
		}
		// The raw call takes the address as the kernel gave it: the range
		// is a mapping of the executable, valid for the life of the process.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
			return r, fmt.Errorf("releasing %x-%x failed: %w", m.start, m.end, errno)
		}
		r.Bytes += m.rssKB << 10
		r.Mappings++
	}
	return r, nil
}

// mapping is one entry of /proc/self/smaps.
type mapping struct {
	start, end  uintptr
	perms, path string
	rssKB       int64
	anonKB      int64
}

func (m mapping) droppable() bool {
	return m.perms[0] == 'r' && m.perms[1] != 'w' && m.perms[3] == 'p' && m.anonKB == 0 && m.rssKB > 0
}

// readMappings returns the mappings of path in an smaps listing.
func readMappings(r io.Reader, path string) ([]mapping, error) {
	var out []mapping
	var cur *mapping
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") {
			// A header: "start-end perms offset dev inode [path]".
			cur = nil
			if len(fields) < 6 || strings.Join(fields[5:], " ") != path || len(fields[1]) != 4 {
				continue
			}
			lo, hi, ok := strings.Cut(fields[0], "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if !ok || err1 != nil || err2 != nil || end <= start {
				return nil, fmt.Errorf("unexpected memory map line %q", line)
			}
			out = append(out, mapping{start: uintptr(start), end: uintptr(end), perms: fields[1], path: path})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil || len(fields) < 2 {
			continue
		}
		var dst *int64
		switch fields[0] {
		case "Rss:":
			dst = &cur.rssKB
		case "Anonymous:":
			dst = &cur.anonKB
		default:
			continue
		}
		v, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("unexpected memory map line %q", line)
		}
		*dst = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the memory map failed: %w", err)
	}
	return out, nil
}
