package vmware_telemetry_listener

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// wire is the protocol outputs.vmware_telemetry speaks, from the shared
// package, with its errors mapped to the listener's statuses.
type wire struct {
	dict *telemetry.Dictionary
	// checkers remember verdicts by metric shape across batches
	checkers sync.Pool
	// batches and events: decompressed and parsed as a stream, never
	// holding the decompressed body, so a bomb costs a few megabytes
	decoder *telemetry.Decoder
}

func newWire(dictionaryFile string, maxDecompressed, maxLine int64) (*wire, error) {
	dict, err := telemetry.LoadDictionary(dictionaryFile)
	if err != nil {
		return nil, fmt.Errorf("dictionary_file %q: %w", dictionaryFile, err)
	}
	decoder, err := telemetry.NewDecoder(maxDecompressed, maxLine)
	if err != nil {
		return nil, err
	}
	return &wire{dict: dict, decoder: decoder}, nil
}

// level parses the level header. Nothing is ever sent at level none, so a
// batch claiming it is refused before its body is read.
func (*wire) level(header string) (telemetry.Level, error) {
	if header == "" {
		return "", errorf(http.StatusBadRequest, "missing header %s; send the participation level (%q or %q)",
			telemetry.HeaderLevel, telemetry.LevelStandard, telemetry.LevelEnhanced)
	}
	level, err := telemetry.ParseLevel(header)
	if err != nil {
		return "", wrapError(http.StatusBadRequest, err, "header %s", telemetry.HeaderLevel)
	}
	if level == telemetry.LevelNone {
		return "", errorf(http.StatusUnprocessableEntity, "header %s is %q: nothing is sent at that level", telemetry.HeaderLevel, level)
	}
	return level, nil
}

// encoding normalises Content-Encoding; unknown ones are 415.
func (*wire) encoding(header string) (string, error) {
	enc, ok := telemetry.ParseEncoding(header)
	if !ok {
		return "", wrapError(http.StatusUnsupportedMediaType, telemetry.ErrUnsupportedEncoding, "Content-Encoding %q", header)
	}
	return enc, nil
}

// decode decompresses and parses a batch read from body, calling admit
// with each metric as it is decoded, and checks every metric against the
// dictionary at level: one metric not allowed refuses the whole batch.
// size is the decompressed size, for the statistics.
func (w *wire) decode(body io.Reader, encoding string, level telemetry.Level, now time.Time, admit func(telegraf.Metric) error) (metrics []telegraf.Metric, size int64, err error) {
	metrics, size, err = w.decoder.DecodeFunc(body, encoding, now, admit)
	if err != nil {
		return nil, size, decodeError(err)
	}
	checker, _ := w.checkers.Get().(*telemetry.BatchChecker)
	if checker == nil {
		checker = w.dict.NewBatchChecker()
	}
	defer w.checkers.Put(checker)
	if err := checker.Check(metrics, level); err != nil {
		return nil, size, wrapError(http.StatusUnprocessableEntity, err,
			"batch refused at level %s by data dictionary %s", level, w.dict.Version)
	}
	return metrics, size, nil
}

func decodeError(err error) error {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return err // the listener's own refusal (admit)
	case errors.Is(err, telemetry.ErrTooLarge):
		return wrapError(http.StatusRequestEntityTooLarge, err, "body exceeds max_decompressed_size once decompressed; split the batch")
	case errors.Is(err, telemetry.ErrUnsupportedEncoding):
		return wrapError(http.StatusUnsupportedMediaType, err, "body")
	}
	// telemetry.ErrCorrupt, telemetry.ErrMalformed (the first error, with
	// its line): 400. An over-long line is malformed too, not 413: no
	// agent line comes near the limit, and splitting the batch would not
	// help.
	return wrapError(http.StatusBadRequest, err, "body")
}
