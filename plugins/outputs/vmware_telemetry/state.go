package vmware_telemetry

import (
	"fmt"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// pendingChunk is a chunk the last failed write got to: answered (Done)
// or the one that failed. The next write re-forms these from the front of
// the batch, so their keys stay the same (see chunks.go).
type pendingChunk struct {
	Key   string `json:"key"`
	Lines int    `json:"lines"`
	Done  bool   `json:"done,omitempty"`
}

// State is what the output keeps in Telegraf's statefile.
type State struct {
	// Instance is the pseudonym the pending keys were made under; a new key
	// or instance id makes them useless.
	Instance string         `json:"instance"`
	Pending  []pendingChunk `json:"pending,omitempty"`
}

func (t *VMwareTelemetry) GetState() interface{} {
	return State{Instance: t.instance, Pending: t.pending}
}

func (t *VMwareTelemetry) SetState(state interface{}) error {
	s, ok := state.(State)
	if !ok {
		return fmt.Errorf("state of type %T unknown", state)
	}
	for _, p := range s.Pending {
		if p.Lines <= 0 || !telemetry.ValidID(p.Key) {
			return fmt.Errorf("pending batch %q with %d lines is invalid", p.Key, p.Lines)
		}
	}
	if t.instance == "" {
		// The key file is created by Connect: check the state then.
		t.restored = &s
		return nil
	}
	t.applyState(s)
	return nil
}

func (t *VMwareTelemetry) applyState(s State) {
	if s.Instance != t.instance {
		t.Log.Debug("Ignoring saved pending batches of another key or instance")
		return
	}
	t.pending = s.Pending
}
