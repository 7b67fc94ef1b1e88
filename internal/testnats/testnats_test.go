package testnats

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A replicated stream keeps taking and serving messages with one node
// killed, and the node rejoins with its store.
func TestClusterSurvivesOneNodeKilled(t *testing.T) {
	c := Start(t)
	_, js := c.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		t.Helper()
		for i := range n {
			for {
				_, err := js.Publish(ctx, "t.x", []byte{byte(i)})
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("publishing: %v", err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	publish(10)
	c.Kill(1)
	if c.PID(1) != 0 {
		t.Fatalf("killed node has pid %d, want 0", c.PID(1))
	}
	publish(10)
	c.Restart(1)
	if c.PID(1) == 0 {
		t.Fatal("restarted node has no pid")
	}
	publish(10)

	s, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.Names(), info.Cluster.Leader) {
		t.Fatalf("stream leader %q is none of the nodes %v", info.Cluster.Leader, c.Names())
	}
	if info.State.Msgs != 30 {
		t.Fatalf("stream holds %d messages, want 30", info.State.Msgs)
	}
	if got := len(c.URLs()); got != 3 {
		t.Fatalf("%d URLs, want 3", got)
	}
}
