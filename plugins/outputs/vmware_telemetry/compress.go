package vmware_telemetry

// compress compresses a chunk's lines into the output's body buffer, which
// is reused across chunks and writes, and learns from the result how much
// the next chunks will shrink.
func (t *VMwareTelemetry) compress(raw []byte) ([]byte, error) {
	body, err := t.compressor.Compress(t.body, raw)
	if err != nil {
		return nil, err
	}
	t.body = body
	t.seen.add(len(raw), len(body))
	return body, nil
}

// ratio is the compression seen so far; it sizes chunks before they are
// compressed.
type ratio struct {
	raw, compressed int64
}

func (r *ratio) add(raw, compressed int) {
	r.raw += int64(raw)
	r.compressed += int64(compressed)
}

// rawFor is the raw size expected to compress to limit bytes, with a
// margin; before anything is seen it assumes 4:1. The factor stays within
// 1 and 50 so that one odd chunk cannot make the next ones huge or tiny;
// a misestimate only costs a split.
func (r ratio) rawFor(limit int64) int {
	factor := 4.0
	if r.raw > 0 && r.compressed > 0 {
		factor = min(max(float64(r.raw)/float64(r.compressed)*0.8, 1), 50)
	}
	return int(float64(limit) * factor)
}
