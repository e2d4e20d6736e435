package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// takeoverStall holds mochi inside a client id takeover where the old
// connection's end and the new connection's registration interleave
// worst: the new connection, having disconnected the old client, stops
// before marking it taken over until the old client's goroutine has read
// that mark (unset) and gone on to remove its client id's subscriptions
// (OnUnsubscribed, from there); the old goroutine then stops until the
// new connection is registered (OnSessionEstablished), and goes on to
// remove the client id's entry. Both waits are bounded, so a broker that
// does not let the old goroutine read the mark before it is set gets
// through with a pause.
type takeoverStall struct {
	mqtt.HookBase
	mu          sync.Mutex
	old         *mqtt.Client
	oldEnding   bool          // the old client's OnDisconnect ran: later calls are its goroutine's
	oldRead     chan struct{} // the old goroutine is past the mark, removing subscriptions
	established chan struct{} // the new connection is registered
}

func (h *takeoverStall) ID() string { return "takeover-stall" }

func (h *takeoverStall) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnDisconnect, mqtt.OnUnsubscribed, mqtt.OnSessionEstablished}, []byte{b})
}

func (h *takeoverStall) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cl == h.old {
		h.oldEnding = true
	}
}

func (h *takeoverStall) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) {
	h.mu.Lock()
	old, ending := h.old, h.oldEnding
	h.mu.Unlock()
	switch {
	case cl != old:
	case !ending: // the new connection, before it marks the old client
		select {
		case <-h.oldRead:
		case <-time.After(500 * time.Millisecond):
		}
	default: // the old client's goroutine, past the mark
		close(h.oldRead)
		select {
		case <-h.established:
		case <-time.After(5 * time.Second):
		}
	}
}

func (h *takeoverStall) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.old != nil && cl != h.old && cl.ID == h.old.ID {
		close(h.established)
	}
}

// TestTakeoverKeepsTheNewConnection: a connection taking a client id over
// stays the broker's connection under that id, however its registration
// and the old connection's end interleave. With mochi's order alone (the
// old client marked taken over only after it was disconnected), the old
// client's goroutine removed the new connection's entry: the new client
// stayed connected but got nothing delivered, and its publishes had no
// publisher (CI: TestAWSLobbyOverMQTT's announces, dropped for 10 s).
func TestTakeoverKeepsTheNewConnection(t *testing.T) {
	f := newFixture(t, time.Hour)
	stall := &takeoverStall{oldRead: make(chan struct{}), established: make(chan struct{})}
	if err := f.broker.AddTestHook(stall); err != nil {
		t.Fatal(err)
	}
	f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))
	stall.mu.Lock()
	stall.old = f.broker.TestClient("s-1")
	stall.mu.Unlock()
	if stall.old == nil {
		t.Fatal("the first connection is not registered under s-1")
	}
	newer := f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))
	if got := subscribe(t, newer, "things/s-1/ping"); got != 1 {
		t.Fatalf("SUBACK = %#x", got)
	}
	if got := publish(t, newer, "things/s-1/ping", 1, false); got != 0 {
		t.Fatalf("PUBACK = %#x", got)
	}
	newer.waitFor(t, "things/s-1/ping")
	if f.broker.Identity("s-1") == nil {
		t.Error("the broker knows no publisher under s-1 after the takeover")
	}
}

// willStall holds the first connection of clientID at a point where mochi
// (v2.7.9) checks whether the client was stopped before reading on: after
// its CONNACK, before its read loop starts (OnSessionEstablished), or
// inside a packet (OnPublish), until a second connection of clientID is
// established. mochi's read loop then ends without an error and drops the
// will instead of publishing it.
type willStall struct {
	mqtt.HookBase
	clientID    string
	inPublish   bool
	mu          sync.Mutex
	old         *mqtt.Client
	held        chan struct{} // the old client is held
	established chan struct{} // a second connection of clientID is established
}

func (h *willStall) ID() string { return "will-stall" }

func (h *willStall) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnSessionEstablished, mqtt.OnPublish}, []byte{b})
}

func (h *willStall) hold() {
	close(h.held)
	select {
	case <-h.established:
	case <-time.After(5 * time.Second):
	}
}

func (h *willStall) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.ID != h.clientID {
		return
	}
	h.mu.Lock()
	first := h.old == nil
	if first {
		h.old = cl
	}
	h.mu.Unlock()
	switch {
	case !first:
		close(h.established)
	case !h.inPublish:
		h.hold()
	}
}

func (h *willStall) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.mu.Lock()
	old := h.old
	h.mu.Unlock()
	if h.inPublish && cl == old && pk.TopicName == "things/"+h.clientID+"/hold" {
		h.hold()
	}
	return pk, nil
}

// TestWillOnTakeoverWhileBusy: a session taken over while its connection
// is not waiting for the next packet - not yet reading, or handling one -
// still has its will published, as when it is taken over idle
// (TestWillOnTakeover). With mochi alone the will was dropped.
func TestWillOnTakeoverWhileBusy(t *testing.T) {
	tests := []struct {
		name      string
		inPublish bool
	}{
		{"before its read loop", false},
		{"handling a publish", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, time.Hour)
			obs := f.thingsObserver(t)
			stall := &willStall{clientID: "s-2", inPublish: tc.inPublish, held: make(chan struct{}), established: make(chan struct{})}
			if err := f.broker.AddTestHook(stall); err != nil {
				t.Fatal(err)
			}
			old := f.connectWill(t, "s-2", 0)
			if tc.inPublish {
				if got := publish(t, old, "things/s-2/hold", 0, false); got != 0 {
					t.Fatalf("publish = %#x", got)
				}
			}
			<-stall.held
			f.mustConnect("s-2", "s-2", []byte(f.token("s-2", "mqtt"))) // takes s-2 over
			if m := obs.waitFor(t, "things/s-2/status"); string(m.Payload) != "gone" {
				t.Errorf("will payload = %q", m.Payload)
			}
			// The event log says why the old connection ended.
			testenv.Eventually(t, 10*time.Second, "s-2's first connection recorded as taken over", func() bool {
				evs, _ := f.store.ListEvents(context.Background(), store.EventFilter{Type: "broker.disconnected", Subject: "client/s-2", Limit: 10})
				for _, ev := range evs {
					var d struct{ Reason string }
					if json.Unmarshal(ev.Details, &d) == nil && d.Reason == packets.ErrSessionTakenOver.Reason {
						return true
					}
				}
				return false
			})
		})
	}
}
