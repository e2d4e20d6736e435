package events_test

import (
	"context"
	"testing"

	"github.com/gatehouse-iot/gatehouse/internal/events"
)

// BenchmarkBatcherConnectionEvents is the audit cost of one MQTT
// connection in a CONNECT storm: a broker.connected and a
// broker.disconnected event, written by a running Batcher to SQLite in
// batches (the embedded broker's default). It reports ns/op per
// connection (two events).
//
//	go test -run '^$' -bench BatcherConnectionEvents -benchtime 20000x ./internal/events
func BenchmarkBatcherConnectionEvents(b *testing.B) {
	l, _ := newLog(b)
	bt := l.NewBatcher(4096, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = bt.Run(ctx) }()
	type connected struct {
		ClientID string   `json:"clientId"`
		Listener string   `json:"listener"`
		Method   string   `json:"method"`
		Policies []string `json:"policies"`
		Protocol byte     `json:"protocol"`
		Remote   string   `json:"remote"`
		Thing    string   `json:"thing"`
	}
	type disconnected struct {
		ClientID    string `json:"clientId"`
		Reason      string `json:"reason"`
		SessionKept bool   `json:"sessionKept"`
	}
	actx := events.WithActor(ctx, "thing:sensor-1")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_ = bt.Enqueue(actx, "broker.connected", "client/sensor-1", &connected{ClientID: "sensor-1", Listener: "mqtt",
			Method: "access_token", Policies: []string{"sensors"}, Protocol: 4, Remote: "127.0.0.1:50312", Thing: "sensor-1"})
		_ = bt.Enqueue(actx, "broker.disconnected", "client/sensor-1", &disconnected{ClientID: "sensor-1", Reason: "client disconnected"})
	}
	cancel()
	<-done // Run writes what is queued before it returns
}
