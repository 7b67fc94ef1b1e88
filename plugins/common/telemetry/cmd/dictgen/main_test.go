package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

func TestRunWritesAndChecks(t *testing.T) {
	dir := t.TempDir()
	cp, md := filepath.Join(dir, "dict.toml"), filepath.Join(dir, "dict.md")

	// Check mode fails on missing or stale files and writes nothing.
	require.Error(t, run(cp, md, true))
	require.NoFileExists(t, cp)

	require.NoError(t, run(cp, md, false))
	data, err := os.ReadFile(cp)
	require.NoError(t, err)
	require.Equal(t, telemetry.DefaultDictionaryTOML, data)
	data, err = os.ReadFile(md)
	require.NoError(t, err)
	require.Equal(t, telemetry.DefaultDictionary().Markdown(), data)
	require.NoError(t, run(cp, md, true))

	require.NoError(t, os.WriteFile(md, []byte("edited by hand\n"), 0o600))
	require.ErrorContains(t, run(cp, md, true), "out of date; run go generate ./plugins/common/telemetry")
}
