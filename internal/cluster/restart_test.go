package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
	restarted, box, stop := start(2)
	stops[2] = stop
	// Rejoining takes a JetStream election or two, slow on a loaded
	// machine under the race detector; the retained messages are loaded
	// before the node says it is ready.
	select {
	case <-restarted.Ready():
	case <-time.After(2 * time.Minute):
		t.Fatal("the restarted node never became ready")
	}
	select {
	case got := <-box.retained:
		if string(got.Payload) != "new" {
			t.Fatalf("restarted node loaded %q, want new", got.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("restarted node is ready but loaded no retained message")
	}
}

func TestFromLeader(t *testing.T) {
	peer := func(name string) *jetstream.PeerInfo { return &jetstream.PeerInfo{Name: name} }
	tests := []struct {
		name string
		info *jetstream.ClusterInfo
		want bool
	}{
		{"not clustered", nil, true},
		{"the leader answered", &jetstream.ClusterInfo{Leader: "n0", Replicas: []*jetstream.PeerInfo{peer("n1"), peer("n2")}}, true},
		{"a single replica", &jetstream.ClusterInfo{Leader: "n0"}, true},
		{"a follower answered", &jetstream.ClusterInfo{Leader: "n0", Replicas: []*jetstream.PeerInfo{peer("n0"), peer("n1")}}, false},
		{"no leader", &jetstream.ClusterInfo{Replicas: []*jetstream.PeerInfo{peer("n0"), peer("n1"), peer("n2")}}, false},
	}
	for _, tt := range tests {
		if got := fromLeader(tt.info); got != tt.want {
			t.Errorf("%s: fromLeader = %v, want %v", tt.name, got, tt.want)
		}
	}
}
