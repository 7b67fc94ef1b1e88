// Command dictgen writes the copies of the data dictionary from its
// canonical, embedded file: the configs/ copy operators read and edit from,
// and the human-readable table. Run by `go generate ./plugins/common/telemetry`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

func main() {
	copyPath := flag.String("copy", "", "write a copy of the dictionary TOML here")
	markdownPath := flag.String("markdown", "", "write the markdown table here")
	check := flag.Bool("check", false, "do not write; fail if the files differ from what would be written")
	flag.Parse()

	if err := run(*copyPath, *markdownPath, *check); err != nil {
		fmt.Fprintln(os.Stderr, "dictgen:", err)
		os.Exit(1)
	}
}

func run(copyPath, markdownPath string, check bool) error {
	d, err := telemetry.ParseDictionary(telemetry.DefaultDictionaryTOML, "data-dictionary.toml")
	if err != nil {
		return err
	}
	outputs := []struct {
		path string
		data []byte
	}{
		{copyPath, telemetry.DefaultDictionaryTOML},
		{markdownPath, d.Markdown()},
	}
	for _, o := range outputs {
		if o.path == "" {
			continue
		}
		if check {
			cur, err := os.ReadFile(o.path)
			if err != nil {
				return err
			}
			if !bytes.Equal(cur, o.data) {
				return fmt.Errorf("%s is out of date; run go generate ./plugins/common/telemetry", o.path)
			}
			continue
		}
		if err := os.WriteFile(o.path, o.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
