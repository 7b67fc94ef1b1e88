package telemetry

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/influxdata/telegraf"
)

// BatchChecker runs Dictionary.Check over the metrics of received batches,
// calling it once per shape instead of once per metric. Check's verdict
// depends on the measurement, each tag's key and value, each field's key,
// type and (for strings) value; where the dictionary pseudonymizes a value
// it depends only on whether the value is a pseudonym. So metrics that
// differ only in pseudonyms and in non-string field values (the node
// series of one cluster: same OS, kernel and versions, another node) share
// a verdict, and the pattern matching runs once per batch, not per metric.
// The verdicts are remembered for the checker's life, up to a bound, and
// only passing ones of shapes up to maxShapeKey bytes: a client's long
// values or refused metrics never stay in memory after their batch.
// Not safe for concurrent use: use one per goroutine or per batch.
type BatchChecker struct {
	dict     *Dictionary
	verdicts map[string]struct{} // shapes that passed
	key      []byte
}

// maxShapes bounds the remembered verdicts and maxShapeKey the size of one
// shape remembered (a node metric's shape is about 300 bytes); beyond
// either, Check runs unmemoized. A checker holds at most about 3 MiB.
const (
	maxShapes   = 4096
	maxShapeKey = 512
)

// NewBatchChecker returns a checker of d.
func (d *Dictionary) NewBatchChecker() *BatchChecker {
	return &BatchChecker{dict: d, verdicts: make(map[string]struct{})}
}

// Check checks every metric at level and returns the first error (as
// Dictionary.Check words it), so one metric not allowed refuses the batch.
func (c *BatchChecker) Check(metrics []telegraf.Metric, level Level) error {
	for _, m := range metrics {
		c.key = c.shape(c.key[:0], m, level)
		if _, ok := c.verdicts[string(c.key)]; ok {
			continue // same shape, passed before
		}
		if err := c.dict.Check(m, level); err != nil {
			return err
		}
		if len(c.verdicts) < maxShapes && len(c.key) <= maxShapeKey {
			c.verdicts[string(c.key)] = struct{}{}
		}
	}
	return nil
}

// shape appends the parts of m that Check's verdict depends on: counts and
// lengths prefix every part, so no two shapes collide.
func (c *BatchChecker) shape(key []byte, m telegraf.Metric, level Level) []byte {
	add := func(s string) {
		key = binary.AppendUvarint(key, uint64(len(s)))
		key = append(key, s...)
	}
	add(string(level))
	name := m.Name()
	add(name)
	meas := c.dict.Measurements[name]
	tags := m.TagList()
	key = binary.AppendUvarint(key, uint64(len(tags)))
	for _, t := range tags {
		add(t.Key)
		add(c.value(meas, t.Key, t.Value, true))
	}
	fields := m.FieldList()
	key = binary.AppendUvarint(key, uint64(len(fields)))
	for _, f := range fields {
		add(f.Key)
		switch v := f.Value.(type) {
		case string:
			key = append(key, 's')
			add(c.value(meas, f.Key, v, false))
		case int64:
			key = append(key, 'i')
		case uint64:
			key = append(key, 'u')
		case float64:
			key = append(key, 'f')
		case bool:
			key = append(key, 'b')
		default:
			key = append(key, '?')
		}
	}
	return key
}

// pseudonymShape stands for every pseudonym in a pseudonymized position;
// it is not hex digits, so no real value is mistaken for it.
const pseudonymShape = "\x00pseudonym"

// value is v, or pseudonymShape for a pseudonym where the dictionary
// pseudonymizes; the entry is looked up only for pseudonym-shaped values.
func (c *BatchChecker) value(meas *Measurement, key, v string, tag bool) string {
	if meas == nil || !IsPseudonym(v) {
		return v
	}
	var e *Entry
	if tag {
		if e = meas.Tags[key]; e == nil {
			e = c.dict.Common.Tags[key]
		}
	} else {
		e = meas.Fields[key]
	}
	if e != nil && e.Class == ClassPseudonymize {
		return pseudonymShape
	}
	return v
}

// Check verifies that a received metric is one the dictionary allows at the
// level, as a policy of this dictionary would have produced it: a listed
// measurement, only listed tags and fields of their class and type,
// pseudonyms where values are pseudonymized, identity tags only at enhanced.
// The error wraps ErrNotAllowed and names the measurement and key.
func (d *Dictionary) Check(m telegraf.Metric, level Level) error {
	name := m.Name()
	if level != LevelStandard && level != LevelEnhanced {
		if level == LevelNone {
			return fmt.Errorf("measurement %q at level none: nothing is sent at that level: %w", name, ErrNotAllowed)
		}
		return fmt.Errorf("measurement %q: level %q unknown: %w", name, level, ErrNotAllowed)
	}
	meas := d.Measurements[name]
	if meas == nil {
		return fmt.Errorf("measurement %q not in dictionary version %s: %w", name, d.Version, ErrNotAllowed)
	}
	for _, t := range m.TagList() {
		e := meas.allTags[t.Key]
		if err := checkValue(e, level, t.Value); err != nil {
			return fmt.Errorf("measurement %q tag %q: %w: %w", name, t.Key, err, ErrNotAllowed)
		}
	}
	n := 0
	for _, f := range m.FieldList() {
		e := meas.Fields[f.Key]
		if e != nil && !typeMatches(e.Type, f.Value) {
			return fmt.Errorf("measurement %q field %q: value of type %T where the dictionary says %s: %w", name, f.Key, f.Value, e.Type, ErrNotAllowed)
		}
		if err := checkValue(e, level, f.Value); err != nil {
			return fmt.Errorf("measurement %q field %q: %w: %w", name, f.Key, err, ErrNotAllowed)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("measurement %q has no fields: %w", name, ErrNotAllowed)
	}
	return nil
}

func checkValue(e *Entry, level Level, v any) error {
	if e == nil {
		return errors.New("not listed")
	}
	switch e.Class {
	case ClassDrop:
		return errors.New("class drop is never sent")
	case ClassIdentity:
		if level != LevelEnhanced {
			return fmt.Errorf("identity is sent at level %s only, not %s", LevelEnhanced, level)
		}
	case ClassPseudonymize:
		if s, _ := v.(string); !IsPseudonym(s) {
			return errors.New("value is not a pseudonym")
		}
	case ClassKeep:
		if s, ok := v.(string); ok && !e.allows(s) {
			// The value itself stays out of the message: it may be what
			// should not have been sent.
			return errors.New("value outside the listed values, pattern or version scheme")
		}
	}
	return nil
}
