package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestRestartedNodeGetsCurrentRetained: a node that was down while a
// retained message changed loads the current one when it comes back, not
// what its own (stale) copy of the bucket held.
func TestRestartedNodeGetsCurrentRetained(t *testing.T) {
	routes := freePorts(t, 3)
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	start := func(i int) (*Node, *inbox, func()) {
		node, err := Start(Config{Replica: fmt.Sprintf("r%d", i), StreamReplicas: 3,
			Embedded: &Embedded{Name: fmt.Sprintf("n%d", i), Listen: routes[i], Routes: routes, StoreDir: dirs[i]}})
		if err != nil {
			t.Fatal(err)
		}
		box := newInbox()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = node.Run(ctx, box.handler()) }()
		stop := func() { cancel(); <-done; node.Close() }
		return node, box, stop
	}
	var nodes []*Node
	var stops []func()
	for i := range 3 {
		n, _, stop := start(i)
		nodes, stops = append(nodes, n), append(stops, stop)
	}
	defer func() {
		for _, s := range stops {
			if s != nil {
				s()
			}
		}
	}()
	waitReady(t, nodes...)
	pub := func(v string) {
		if err := nodes[0].Publish(context.Background(), Message{Topic: "state/x", Payload: []byte(v), QoS: 1, Retain: true}); err != nil {
			t.Fatal(err)
		}
	}
	pub("old")
	stops[2]()
	stops[2] = nil
	pub("")
	pub("new")
	_, box, stop := start(2)
	stops[2] = stop
	select {
	case got := <-box.retained:
		if string(got.Payload) != "new" {
			t.Fatalf("restarted node loaded %q, want new", got.Payload)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("restarted node loaded no retained message")
	}
}
