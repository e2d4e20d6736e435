package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// freePorts picks n free loopback addresses for route listeners, below
// the ephemeral port range: the servers' client listeners (port 0) cannot
// be given one of them before its route listener binds it.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for port := 20000 + (os.Getpid()*7)%8000; len(addrs) < n && port < 32000; port++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	if len(addrs) < n {
		t.Fatal("no free route ports")
	}
	return addrs
}

// inbox collects what a node's handler is given.
type inbox struct {
	messages  chan Message
	retained  chan Message
	connected chan string
}

func newInbox() *inbox {
	return &inbox{messages: make(chan Message, 100), retained: make(chan Message, 100), connected: make(chan string, 100)}
}

func (b *inbox) handler() Handler {
	return Handler{
		Message:   func(m Message) { b.messages <- m },
		Retained:  func(m Message) { b.retained <- m },
		Connected: func(id string, _ Stamp) { b.connected <- id },
	}
}

// startCluster runs n embedded nodes routed to each other and waits until
// each has the stream.
func startCluster(t *testing.T, n int) ([]*Node, []*inbox) {
	t.Helper()
	routes := freePorts(t, n)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var nodes []*Node
	var boxes []*inbox
	for i := range n {
		node, err := Start(Config{Replica: fmt.Sprintf("r%d", i), StreamReplicas: min(n, 3),
			Embedded: &Embedded{Name: fmt.Sprintf("n%d", i), Listen: routes[i], Routes: routes, StoreDir: t.TempDir()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(node.Close)
		box := newInbox()
		wg.Go(func() { _ = node.Run(ctx, box.handler()) })
		nodes, boxes = append(nodes, node), append(boxes, box)
	}
	return nodes, boxes
}

// deliver publishes m from one node until the other receives it (the
// cluster's routes and JetStream come up asynchronously), then returns.
func deliver(t *testing.T, from *Node, to *inbox, m Message) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := from.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-to.messages:
			if got.Topic == m.Topic && string(got.Payload) == string(m.Payload) {
				return
			}
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s never arrived", m.Topic)
		}
	}
}

func waitReady(t *testing.T, nodes ...*Node) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for _, n := range nodes {
		select {
		case <-n.Ready():
		case <-deadline:
			t.Fatal("jetstream never became ready")
		}
	}
}

func TestClusterCarriesMessagesRetainedAndConnects(t *testing.T) {
	nodes, boxes := startCluster(t, 3)
	waitReady(t, nodes...)
	// Core NATS (QoS 0) and the stream (QoS 1) both reach the others, with
	// topics NATS subjects could not hold.
	deliver(t, nodes[0], boxes[1], Message{Topic: "sensors/a b/*/>/ü", Payload: []byte("q0")})
	deliver(t, nodes[1], boxes[2], Message{Topic: "sensors/x", Payload: []byte("q1"), QoS: 1})
	// A topic with CR LF cannot forge headers, and MQTT 5 properties
	// travel with the message.
	pf := byte(1)
	props := &Properties{PayloadFormat: &pf, MessageExpiry: 60, ContentType: "text/plain", ResponseTopic: "r/\r\nGatehouse-Origin: r0",
		CorrelationData: []byte{0, 1, 2}, User: [][2]string{{"k\r\n", "v"}, {"k", "v2"}}}
	forged := Message{Topic: "a\r\nGatehouse-Origin: r0\r\n", Payload: []byte("crlf"), QoS: 1, Properties: props}
	deliver(t, nodes[2], boxes[0], forged)
	if err := nodes[2].Publish(context.Background(), Message{Topic: forged.Topic, Payload: []byte("again"), Properties: props}); err != nil {
		t.Fatal(err)
	}
	for got := <-boxes[0].messages; ; got = <-boxes[0].messages {
		if string(got.Payload) == "again" {
			if got.Topic != forged.Topic || !reflect.DeepEqual(got.Properties, props) {
				t.Fatalf("got %q %+v, want %q %+v", got.Topic, got.Properties, forged.Topic, props)
			}
			break
		}
	}
	// A node never gets its own messages back: the sentinel from the
	// other node arrives after the message node 0 sent itself.
	if err := nodes[0].Publish(context.Background(), Message{Topic: "own", Payload: []byte("own"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	deliver(t, nodes[2], boxes[0], Message{Topic: "sentinel", Payload: []byte("s"), QoS: 1})

	// A retained message reaches a node started afterwards.
	if err := nodes[0].Publish(context.Background(), Message{Topic: "state/lamp", Payload: []byte("on"), QoS: 1, Retain: true, Properties: &Properties{ContentType: "text/plain"}}); err != nil {
		t.Fatal(err)
	}
	late, err := Start(Config{Replica: "late", Embedded: &Embedded{Name: "late", Listen: "127.0.0.1:0", Routes: []string{nodes[0].RouteAddr()}, StoreDir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(late.Close)
	lateBox := newInbox()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() { defer close(done); _ = late.Run(ctx, lateBox.handler()) }()
	select {
	case got := <-lateBox.retained:
		if got.Topic != "state/lamp" || string(got.Payload) != "on" || !got.Retain || got.QoS != 1 || got.Properties.ContentType != "text/plain" {
			t.Fatalf("retained: got %+v", got)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("retained message never reached the late node")
	}

	if _, err := nodes[1].AnnounceClient("dev-1"); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2} {
		select {
		case got := <-boxes[i].connected:
			if got != "dev-1" {
				t.Fatalf("connected: got %q, want dev-1", got)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("node %d never heard of dev-1", i)
		}
	}
	select {
	case got := <-boxes[1].connected:
		t.Fatalf("node 1 heard its own announcement %q", got)
	default:
	}
	for _, m := range drain(boxes[0].messages) {
		if m.Topic == "own" {
			t.Fatal("node 0 received its own message")
		}
	}
}

func drain(c chan Message) []Message {
	var out []Message
	for {
		select {
		case m := <-c:
			out = append(out, m)
		default:
			return out
		}
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"neither", Config{}},
		{"both", Config{URL: "nats://127.0.0.1:4222", Embedded: &Embedded{Name: "x", Listen: "127.0.0.1:0"}}},
		{"bad listen", Config{Embedded: &Embedded{Name: "x", Listen: "nope"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Start(tt.cfg); err == nil {
				t.Fatal("got nil error")
			}
		})
	}
}

// TestExternalNATS joins two nodes through an external NATS server with
// JetStream (GATEHOUSE_TEST_NATS, e.g. nats://127.0.0.1:4222).
func TestExternalNATS(t *testing.T) {
	url := os.Getenv("GATEHOUSE_TEST_NATS")
	if url == "" {
		t.Skip("GATEHOUSE_TEST_NATS not set")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var nodes []*Node
	var boxes []*inbox
	for i := range 2 {
		node, err := Start(Config{URL: url, Replica: fmt.Sprintf("ext-%d-%d", os.Getpid(), i)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(node.Close)
		box := newInbox()
		wg.Go(func() { _ = node.Run(ctx, box.handler()) })
		nodes, boxes = append(nodes, node), append(boxes, box)
	}
	waitReady(t, nodes...)
	deliver(t, nodes[0], boxes[1], Message{Topic: "ext/q1", Payload: []byte("q1"), QoS: 1})
	deliver(t, nodes[1], boxes[0], Message{Topic: "ext/q0", Payload: []byte("q0")})
}

// TestRoutePortTaken: a route listener that cannot bind fails Start at
// once, with the reason.
func TestRoutePortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Start(Config{Embedded: &Embedded{Name: "x", Listen: ln.Addr().String(), Routes: []string{ln.Addr().String()}, StoreDir: t.TempDir()}})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start on a taken route port: got %v, want address already in use", err)
	}
}
