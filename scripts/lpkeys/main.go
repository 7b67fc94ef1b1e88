// Command lpkeys reads line protocol (as printed by `telegraf --test`) on
// stdin and prints the schema of each series, one sorted line per distinct
// "measurement tag-keys field-keys", so two agents' outputs can be diffed
// by shape while values differ.
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

func main() {
	seen := make(map[string]bool)
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<24)
	for scanner.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(scanner.Text(), ">"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := schema(line)
		if err != nil {
			fmt.Fprintf(os.Stderr, "lpkeys: %v in %q\n", err, line)
			os.Exit(1)
		}
		seen[key] = true
	}
	if err := scanner.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "lpkeys:", err)
		os.Exit(1)
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Println(k)
	}
}

func schema(line string) (string, error) {
	dec := lineprotocol.NewDecoderWithBytes([]byte(line))
	if !dec.Next() {
		return "", fmt.Errorf("no line")
	}
	name, err := dec.Measurement()
	if err != nil {
		return "", err
	}
	var tags, fields []string
	for {
		k, _, err := dec.NextTag()
		if err != nil {
			return "", err
		}
		if k == nil {
			break
		}
		tags = append(tags, string(k))
	}
	for {
		k, _, err := dec.NextField()
		if err != nil {
			return "", err
		}
		if k == nil {
			break
		}
		fields = append(fields, string(k))
	}
	sort.Strings(tags)
	sort.Strings(fields)
	return fmt.Sprintf("%s tags=%s fields=%s", name, strings.Join(tags, ","), strings.Join(fields, ",")), nil
}
