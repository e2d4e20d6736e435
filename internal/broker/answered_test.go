package broker_test

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/internal/authn"
	"github.com/gatehouse-iot/gatehouse/internal/broker"
	"github.com/gatehouse-iot/gatehouse/internal/events"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

// echoAnswerer answers requests on $svc/<op> with "<principal> <client id>
// <payload>" on $svc/<op>/accepted.
var echoAnswerer = broker.Answerer{
	Owns:      func(topic string) bool { return strings.HasPrefix(topic, "$svc/") },
	IsRequest: func(topic string) bool { return strings.Count(topic, "/") == 1 },
	Answer: func(_ context.Context, id *authn.Identity, clientID, topic string, payload []byte) (string, []byte, bool) {
		return topic + "/accepted", []byte(id.Principal + " " + clientID + " " + string(payload)), true
	},
}

// TestAnswerers: in an answerer's space a client publishes requests only;
// each is answered to the asking connection alone, never forwarded or
// retained, even to clients whose policy allows everything; no will and
// no HTTPS publish goes there.
func TestAnswerers(t *testing.T) {
	f := newFixtureWith(t, time.Hour, func(c *broker.Config) { c.Answerers = []broker.Answerer{echoAnswerer} })
	ctx := events.WithActor(context.Background(), "test")
	if _, err := f.reg.CreatePolicy(ctx, registry.NewPolicy{Name: "everything", Document: []byte(everything)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.CreateThingType(ctx, registry.ThingTypeSpec{Name: "any", Scopes: []string{"mqtt"}, DefaultPolicies: []string{"everything"}}); err != nil {
		t.Fatal(err)
	}
	maps.Copy(f.secrets, f.env.Things(ctx, "any", "a", "b"))
	w := &witness{}
	if err := f.broker.Subscribe("$svc/#", 950, w.add); err != nil {
		t.Fatal(err)
	}
	a := f.mustConnect("a", "a", []byte(f.token("a", "mqtt")))
	b := f.mustConnect("b", "b", []byte(f.token("b", "mqtt")))
	for _, c := range []*client{a, b} {
		if got := subscribe(t, c, "$svc/#"); got != 1 {
			t.Fatalf("SUBSCRIBE $svc/# = %#x, want 1 (the policy allows it)", got)
		}
	}

	if got := publish(t, a, "$svc/op", 1, true); got != 0 {
		t.Fatalf("request = %#x", got)
	}
	if p := a.waitFor(t, "$svc/op/accepted"); !strings.HasPrefix(string(p.Payload), "thing:a a ") {
		t.Errorf("answer = %q", p.Payload)
	}
	// b asks next; its answer arriving proves a's was not sent to it.
	if got := publish(t, b, "$svc/op", 1, false); got != 0 {
		t.Fatalf("b's request = %#x", got)
	}
	b.waitFor(t, "$svc/op/accepted")
	for _, m := range b.messages() {
		if strings.HasPrefix(string(m.Payload), "thing:a ") {
			t.Errorf("b received a's answer %q on %s", m.Payload, m.Topic)
		}
	}
	for _, topic := range []string{"$svc/op/accepted", "$svc/op/x/y"} {
		if got := publish(t, a, topic, 1, false); got != 0x87 {
			t.Errorf("PUBLISH to %s = %#x, want 0x87", topic, got)
		}
	}
	if got := publish(t, a, "things/a/sentinel", 1, false); got != 0 {
		t.Fatalf("sentinel = %#x", got)
	}
	if got := w.topics(); len(got) != 0 {
		t.Errorf("forwarded in the answerer's space: %v", got)
	}
	for topic := range f.broker.Server().Topics.Retained.GetAll() {
		if strings.HasPrefix(topic, "$svc/") {
			t.Errorf("a client retained %s", topic)
		}
	}
	if _, code, _ := f.connect("a-2", "a", []byte(f.token("a", "mqtt")), &paho.WillMessage{Topic: "$svc/op", Payload: []byte("x")}); code != 0x87 {
		t.Errorf("CONNECT with a will to a request topic = %#x, want 0x87", code)
	}
	req, _ := http.NewRequest("POST", f.http.URL+"/topics/$svc/op?qos=1", strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer "+f.token("a", "mqtt"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("HTTPS publish to a request topic = %d, want 403", resp.StatusCode)
	}
}
