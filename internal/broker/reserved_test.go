package broker_test

import (
	"context"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// everything is the broadest policy a thing can hold.
const everything = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}`

// witness records, through the broker's inline client (which no policy
// limits), the test's own messages (not the server's event mirror).
type witness struct {
	mu  sync.Mutex
	got []string
}

func (w *witness) add(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	if !strings.HasPrefix(string(pk.Payload), "hello ") && !strings.Contains(string(pk.Payload), "evil.example") {
		return
	}
	w.mu.Lock()
	w.got = append(w.got, pk.TopicName)
	w.mu.Unlock()
}

func (w *witness) topics() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.got...)
}

// intruder registers thing name with a policy that allows everything and
// returns an MQTT token of it.
func (f *fixture) intruder(name string) string {
	f.t.Helper()
	ctx := events.WithActor(context.Background(), "test")
	if _, err := f.reg.CreatePolicy(ctx, registry.NewPolicy{Name: "everything", Document: []byte(everything)}); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.reg.CreateThingType(ctx, registry.ThingTypeSpec{Name: "intruder", Scopes: []string{"mqtt"}, DefaultPolicies: []string{"everything"}}); err != nil {
		f.t.Fatal(err)
	}
	maps.Copy(f.secrets, f.env.Things(ctx, "intruder", name))
	return f.token(name, "mqtt")
}

// TestReservedTopics: $gatehouse/ and $SYS/ belong to the server, as $aws/
// does in AWS IoT. A thing whose policy allows everything still may not
// publish there - a forged lobby assignment (retained or not), a forged
// knock, a forged event on the mirror - over MQTT, as a will, or over
// HTTPS; nor subscribe there, except to the event mirror its policy grants.
func TestReservedTopics(t *testing.T) {
	f := newFixture(t, time.Hour)
	tok := f.intruder("evil")

	w := &witness{}
	for i, filter := range []string{"$gatehouse/#", "things/#"} {
		if err := f.broker.Subscribe(filter, 900+i, w.add); err != nil {
			t.Fatal(err)
		}
	}
	evil := f.mustConnect("evil", "evil", []byte(tok))
	const fp = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	publishes := []struct {
		topic  string
		retain bool
	}{
		{"$gatehouse/lobby/" + fp + "/assignment", false},
		{"$gatehouse/lobby/" + fp + "/assignment", true},
		{"$gatehouse/lobby/" + fp + "/knock", false},
		{"$gatehouse/events/thing.deleted/thing/s-1", false},
		{"$gatehouse/withheld-will", false},
	}
	for _, p := range publishes {
		if got := publish(t, evil, p.topic, 1, p.retain); got != 0x87 {
			t.Errorf("PUBLISH QoS 1 %s (retain %v) = %#x, want 0x87", p.topic, p.retain, got)
		}
		publish(t, evil, p.topic, 0, p.retain)
	}
	publish(t, evil, "$SYS/broker/clients/connected", 0, true)
	// The sentinel: the client's packets are handled in order, so once it
	// is acknowledged, everything before it was refused or delivered.
	if got := publish(t, evil, "things/evil/sentinel", 1, false); got != 0 {
		t.Fatalf("sentinel PUBLISH = %#x", got)
	}
	// mochi acknowledges a QoS 1 PUBLISH before it delivers it: wait for
	// the sentinel's delivery.
	testenv.Eventually(t, 10*time.Second, "the sentinel at the witness", func() bool { return len(w.topics()) > 0 })
	if got := w.topics(); len(got) != 1 || got[0] != "things/evil/sentinel" {
		t.Errorf("published: %v, want only the sentinel", got)
	}
	for topic := range f.broker.Server().Topics.Retained.GetAll() {
		if strings.HasPrefix(topic, "$gatehouse/") {
			t.Errorf("a client retained %s", topic)
		}
	}

	subscriptions := []struct {
		filter string
		want   byte
	}{
		{"$gatehouse/#", 0x87},
		{"$gatehouse/lobby/+/assignment", 0x87},
		{"$gatehouse/lobby/" + fp + "/assignment", 0x87},
		{"$share/g/$gatehouse/lobby/#", 0x87},
		{"$SHARE/g/$gatehouse/lobby/#", 0x87},
		{"$SYS/#", 0x87},
		{"$gatehouse/events/#", 1}, // the event mirror, as the policy grants
		{"#", 1},                   // matches no $ topic [MQTT-4.7.1-1]
	}
	for _, s := range subscriptions {
		if got := subscribe(t, evil, s.filter); got != s.want {
			t.Errorf("SUBSCRIBE %s = %#x, want %#x", s.filter, got, s.want)
		}
	}

	// A will to a reserved topic is refused at CONNECT.
	if _, code, _ := f.connect("evil-2", "evil", []byte(tok), &paho.WillMessage{Topic: "$gatehouse/lobby/" + fp + "/assignment", Payload: []byte("{}")}); code != 0x87 {
		t.Errorf("CONNECT with a will to the lobby = %#x, want 0x87", code)
	}

	// HTTPS: the same policy publishes to things/ but not to $gatehouse/.
	post := func(topic string) int {
		req, _ := http.NewRequest("POST", f.http.URL+"/topics/"+topic+"?qos=1", strings.NewReader(`{"endpoint":"mqtts://evil.example"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("things/evil/https"); got != 200 {
		t.Fatalf("HTTPS publish to things/ = %d, want 200", got)
	}
	for _, topic := range []string{"$gatehouse/lobby/" + fp + "/assignment", "$gatehouse/events/x/y", "$SYS/x"} {
		if got := post(topic); got != 403 {
			t.Errorf("HTTPS publish to %s = %d, want 403", topic, got)
		}
	}
	if got := w.topics(); len(got) != 2 || got[1] != "things/evil/https" {
		t.Errorf("published: %v, want only the sentinel and the HTTPS control", got)
	}
}
