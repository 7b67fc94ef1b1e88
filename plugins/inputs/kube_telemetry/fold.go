package kube_telemetry

// fold consumes one resource's list item by item. item folds one object,
// given as its protobuf encoding, into counters; reset forgets everything
// folded so far (the list restarts after 410 Gone); emit reports what was
// folded, once the whole list has been read.
type fold interface {
	item(raw []byte) error
	reset()
	emit(r *report)
}

// foldConfig is what folds need of the plugin's settings.
type foldConfig struct {
	// addonNamespaces are where DaemonSets and Deployments are matched
	// against the table of known add-ons.
	addonNamespaces map[string]bool
}

// tally folds decoded objects of one kind into counters and reports them.
type tally[T any] interface {
	add(obj *T)
	emit(r *report)
}

// protoPtr is a pointer to a Kubernetes API type with generated protobuf
// code.
type protoPtr[T any] interface {
	*T
	protoObject
}

// objectFold decodes each item into one object of type T, reused for the
// whole list, and adds it to its tally: memory per list is one object,
// whatever the page size.
type objectFold[T any, P protoPtr[T]] struct {
	obj      T
	tally    tally[T]
	newTally func() tally[T]
}

// objects makes the folds of a resource listed as full objects of type T.
func objects[T any, P protoPtr[T]](newTally func(foldConfig) tally[T]) func(foldConfig) fold {
	return func(c foldConfig) fold {
		fresh := func() tally[T] { return newTally(c) }
		return &objectFold[T, P]{tally: fresh(), newTally: fresh}
	}
}

func (f *objectFold[T, P]) item(raw []byte) error {
	if err := decodeInto(P(&f.obj), raw); err != nil {
		return err
	}
	f.tally.add(&f.obj)
	return nil
}

func (f *objectFold[T, P]) reset()         { f.tally = f.newTally() }
func (f *objectFold[T, P]) emit(r *report) { f.tally.emit(r) }

// counted is the fold of a metadata-only resource: the list's item count,
// kept by the list itself, is all there is to it, so items are not
// decoded at all.
func counted(foldConfig) fold { return countedFold{} }

type countedFold struct{}

func (countedFold) item([]byte) error { return nil }
func (countedFold) reset()            {}
func (countedFold) emit(*report)      {}
