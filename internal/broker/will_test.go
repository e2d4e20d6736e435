package broker_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// waitWillDenied waits for the broker.denied event the broker records when
// it withholds clientID's will to topic.
func (f *fixture) waitWillDenied(t *testing.T, clientID, topic string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "a broker.denied event for the will of "+clientID, func() bool {
		evs, _ := f.store.ListEvents(context.Background(), store.EventFilter{Type: "broker.denied", Subject: "client/" + clientID, Limit: 100})
		for _, ev := range evs {
			var d struct{ Action, Resource string }
			if json.Unmarshal(ev.Details, &d) == nil && d.Action == "iot:Publish" && d.Resource == topic {
				return true
			}
		}
		return false
	})
}

// denyStatus makes a telemetry version that denies publishing things/<thing>/status.
func (f *fixture) denyStatus(t *testing.T, thing string) {
	t.Helper()
	ctx := events.WithActor(context.Background(), "test")
	doc := strings.Replace(telemetry, `"Resource":"topic/*/firmware"}`, `"Resource":["topic/*/firmware","topic/things/`+thing+`/status"]}`, 1)
	if _, err := f.reg.CreatePolicyVersion(ctx, "telemetry", 0, []byte(doc), true); err != nil {
		t.Fatal(err)
	}
}

// connectWill opens a session with a will to things/<thing>/status;
// delay > 0 sets a Will Delay Interval and a session that outlives it.
func (f *fixture) connectWill(t *testing.T, thing string, delay uint32) *client {
	t.Helper()
	c := newClient(f.dial("tcp"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: thing, Username: thing, UsernameFlag: true, Password: []byte(f.token(thing, "mqtt")), PasswordFlag: true,
		KeepAlive: 30, CleanStart: true, WillMessage: &paho.WillMessage{Topic: "things/" + thing + "/status", Payload: []byte("gone")}}
	if delay > 0 {
		expiry := uint32(300)
		cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &expiry}
		cp.WillProperties = &paho.WillProperties{WillDelayInterval: &delay}
	}
	ca, err := c.Connect(ctx, cp)
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %v", thing, ca, err)
	}
	return c
}

// TestWillOnTakeover: a session taken over by a new connection with the
// same client id ends, and its will is published (MQTT 5 §3.1.4; AWS IoT
// publishes it on DUPLICATE_CLIENTID) if the policy allows it when it is
// sent - checked against the session's binding of that moment.
func TestWillOnTakeover(t *testing.T) {
	f := newFixture(t, time.Hour)
	obs := f.thingsObserver(t)
	f.connectWill(t, "s-2", 0)
	again := f.mustConnect("s-2", "s-2", []byte(f.token("s-2", "mqtt"))) // takes s-2 over
	if m := obs.waitFor(t, "things/s-2/status"); string(m.Payload) != "gone" {
		t.Errorf("will payload = %q", m.Payload)
	}
	_ = again

	// s-1's will is forbidden by the time it is taken over: withheld.
	old := f.connectWill(t, "s-1", 0)
	f.denyStatus(t, "s-1")
	testenv.Eventually(t, 10*time.Second, "the policy change reaching the live session", func() bool { return publish(t, old, "things/s-1/status", 1, false) != 0 })
	newer := f.mustConnect("s-1", "s-1", []byte(f.token("s-1", "mqtt")))
	f.waitWillDenied(t, "s-1", "things/s-1/status")
	if got := publish(t, newer, "things/s-1/sentinel", 1, false); got != 0 {
		t.Fatalf("sentinel = %#x", got)
	}
	obs.waitFor(t, "things/s-1/sentinel")
	for _, m := range obs.messages() {
		if m.Topic == "things/s-1/status" && string(m.Payload) == "gone" {
			t.Error("a will the policy forbade when it was sent was published")
		}
	}
}

// TestDelayedWillAuthorizedWhenSent: a will with a Will Delay Interval is
// authorized when the delay is over, not at disconnect: iot:Publish revoked
// during the delay stops it; the control will of another thing goes out.
func TestDelayedWillAuthorizedWhenSent(t *testing.T) {
	f := newFixture(t, time.Hour)
	obs := f.thingsObserver(t)
	f.connectWill(t, "s-1", 2)
	f.connectWill(t, "s-2", 2)
	for _, id := range []string{"s-1", "s-2"} {
		cl, _ := f.broker.Server().Clients.Get(id)
		cl.Net.Conn.Close()
	}
	// mochi marks the client closed once its will was handed over.
	for _, id := range []string{"s-1", "s-2"} {
		f.waitGone(t, id)
	}
	f.denyStatus(t, "s-1") // during the delay
	f.waitWillDenied(t, "s-1", "things/s-1/status")
	if m := obs.waitFor(t, "things/s-2/status"); string(m.Payload) != "gone" {
		t.Errorf("control will payload = %q", m.Payload)
	}
	for _, m := range obs.messages() {
		if m.Topic == "things/s-1/status" && string(m.Payload) == "gone" {
			t.Error("a delayed will whose iot:Publish was revoked during the delay was published")
		}
	}
}

// TestDisabledOfflineSessionEnds: a thing disabled while its persistent
// session is offline loses the session with it (nothing may be queued for
// a disabled thing); enabled again, it is told so - no "session present"
// over a queue that was dead meanwhile - and subscribes afresh.
func TestDisabledOfflineSessionEnds(t *testing.T) {
	f := newFixture(t, time.Hour)
	c, _ := f.connectSession(t, "s-1")
	if got := subscribe(t, c, "commands/#"); got != 1 {
		t.Fatalf("SUBACK = %#x", got)
	}
	_ = c.Disconnect(&paho.Disconnect{})
	f.waitGone(t, "s-1")
	ctx := events.WithActor(context.Background(), "test")
	for _, state := range []string{store.StateDisabled, store.StateEnabled} {
		if _, err := f.reg.UpdateThing(ctx, "s-1", 0, registry.ThingPatch{State: &state}); err != nil {
			t.Fatal(err)
		}
		if state == store.StateDisabled {
			testenv.Eventually(t, 10*time.Second, "the offline session of the disabled thing going", func() bool {
				_, ok := f.broker.Server().Clients.Get("s-1")
				return !ok
			})
		}
	}
	back, resumed := f.connectSession(t, "s-1")
	if resumed {
		t.Error("CONNACK says session present for a session whose queue was dropped")
	}
	_ = back
}

// TestDelayedWillQoS1: a delayed will at QoS 1 is published when the delay
// is over (the hook injects it as the server, and mochi refuses an
// injected QoS 1 PUBLISH without a packet id; the Paho suite's
// test_will_delay found this).
func TestDelayedWillQoS1(t *testing.T) {
	f := newFixture(t, time.Hour)
	obs := f.thingsObserver(t)
	c := newClient(f.dial("tcp"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	expiry, delay := uint32(300), uint32(1)
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: "s-1", Username: "s-1", UsernameFlag: true, Password: []byte(f.token("s-1", "mqtt")), PasswordFlag: true,
		KeepAlive: 30, CleanStart: true, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry},
		WillMessage:    &paho.WillMessage{Topic: "things/s-1/status", Payload: []byte("gone"), QoS: 1},
		WillProperties: &paho.WillProperties{WillDelayInterval: &delay}})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect: %v %v", ca, err)
	}
	cl, _ := f.broker.Server().Clients.Get("s-1")
	cl.Net.Conn.Close()
	if m := obs.waitFor(t, "things/s-1/status"); string(m.Payload) != "gone" {
		t.Errorf("will payload = %q", m.Payload)
	}
}

// TestWillOnDisconnect: a client's normal DISCONNECT discards its will
// [MQTT-3.1.2-10]; a DISCONNECT asking for it (0x04) or a connection lost
// without DISCONNECT publishes it [MQTT-3.1.2-8]. Absence is proven by a
// sentinel published after the session's end was recorded.
func TestWillOnDisconnect(t *testing.T) {
	tests := []struct {
		name     string
		end      func(t *testing.T, f *fixture, c *client)
		wantWill bool
	}{
		{"normal DISCONNECT", func(t *testing.T, f *fixture, c *client) { _ = c.Disconnect(&paho.Disconnect{}) }, false},
		{"DISCONNECT with will message", func(t *testing.T, f *fixture, c *client) { _ = c.Disconnect(&paho.Disconnect{ReasonCode: 0x04}) }, true},
		{"connection lost", func(t *testing.T, f *fixture, c *client) { f.broker.TestClient("s-1").Net.Conn.Close() }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, time.Hour)
			obs := f.thingsObserver(t)
			tc.end(t, f, f.connectWill(t, "s-1", 0))
			testenv.Eventually(t, 10*time.Second, "s-1's disconnection recorded", func() bool {
				evs, _ := f.store.ListEvents(context.Background(), store.EventFilter{Type: "broker.disconnected", Subject: "client/s-1", Limit: 1})
				return len(evs) > 0
			})
			other := f.mustConnect("s-2", "s-2", []byte(f.token("s-2", "mqtt")))
			if got := publish(t, other, "things/s-2/sentinel", 1, false); got != 0 {
				t.Fatalf("sentinel PUBACK = %#x", got)
			}
			obs.waitFor(t, "things/s-2/sentinel")
			got := false
			for _, m := range obs.messages() {
				if m.Topic == "things/s-1/status" && string(m.Payload) == "gone" {
					got = true
				}
			}
			if got != tc.wantWill {
				t.Errorf("will published = %v, want %v", got, tc.wantWill)
			}
		})
	}
}
